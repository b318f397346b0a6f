/**
 * Shared CLI plumbing: run a main function, print user errors in one line and exit non-zero,.
 * @module
 */
import { FastpruneError } from "../lib/errors.ts";

/** Runs `main`; a `FastpruneError` prints `error: <message>` and exits 1, anything else exits 2. */
export async function runCli(main: () => Promise<void>): Promise<void> {
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
