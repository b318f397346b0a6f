/**
 * Shared CLI plumbing: run a main function, print user errors in one line and exit non-zero,.
 * @module
 */
import { FastpruneError } from "../lib/errors.ts";

/**
 * With `--help` or `-h` among the arguments: prints `usage` (and where the full reference is) to
 * stdout and exits 0.
 */
export function helpIfAsked(usage: string): void {
  if (Deno.args.includes("--help") || Deno.args.includes("-h")) {
    console.log(`${usage}\n\nOptions and outputs: README.md, "Command line".`);
    Deno.exit(0);
  }
}

/**
 * Runs `main`; a `FastpruneError` prints `error: <message>` and exits 1, anything else exits 2.
 * With `usage`, `--help` / `-h` print it and exit 0 first (`helpIfAsked`).
 */
export async function runCli(main: () => Promise<void>, usage?: string): Promise<void> {
  if (usage) helpIfAsked(usage);
  try {
    await main();
  } catch (e) {
    if (e instanceof FastpruneError) {
      console.error(`error: ${e.message}`);
      Deno.exit(1);
    }
    const msg = e instanceof Error ? e.message : String(e);
    console.error(`error: ${msg.split("\n")[0]}`);
    if (Deno.env.get("FASTPRUNE_DEBUG")) console.error(e);
    Deno.exit(2);
  }
}
