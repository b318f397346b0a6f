/**
 * Every command answers `--help` (and `-h`) with its usage on stdout and exit status 0, before it
 * touches the GPU or any file.
 * @module
 */
import { assert } from "./helpers.ts";
import { runScript } from "./helpers.ts";

const SCRIPTS = ["prune", "eval", "forward", "train", "experiment", "zoo", "bench", "profile"];

Deno.test("every deno task answers --help / -h with its usage, exit 0", async () => {
  for (const name of SCRIPTS) {
    for (const flag of ["--help", "-h"]) {
      const r = await runScript(`${name}.ts`, [flag]);
      assert(r.code === 0, `${name} ${flag}: exit ${r.code}: ${r.stderr}`);
      assert(r.stdout.startsWith(`usage: deno task ${name}`), `${name} ${flag}: ${r.stdout}`);
    }
  }
});
