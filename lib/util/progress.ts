/**
 * Progress reporting for long stages, on stderr: a bar with count, rate and ETA on a TTY, a line
 * every few seconds otherwise. Library functions take an optional `onProgress(done, total)`
 * callback; the CLIs turn it into a `Progress`.
 * @module
 */

/** Callback library stages call as they advance. */
export type OnProgress = (done: number, total: number, status?: string) => void;

/** A progress reporter for a stage of `total` steps. */
export class Progress {
  #start = performance.now();
  #last = performance.now();
  #done = 0;
  #tty = Deno.stderr.isTerminal();
  #enc = new TextEncoder();

  /** Starts reporting a stage called `label` with `total` steps (0 = unknown). */
  constructor(readonly label: string, readonly total: number, readonly unit = "it") {}

  /** Sets the absolute count (for `OnProgress` callbacks). */
  set(done: number, status = ""): void {
    this.tick(done - this.#done, status);
  }

  /** Advances by `n` steps, with an optional status suffix. */
  tick(n = 1, status = ""): void {
    this.#done += n;
    const now = performance.now();
    const every = this.#tty ? 100 : 5000;
    if (now - this.#last < every && this.#done < this.total) return;
    this.#last = now;
    this.#print(status);
  }

  #print(status: string, final = false): void {
    const secs = (performance.now() - this.#start) / 1000;
    const rate = this.#done / Math.max(secs, 1e-9);
    const eta = this.total > 0 && rate > 0 ? (this.total - this.#done) / rate : 0;
    const frac = this.total > 0 ? this.#done / this.total : 0;
    const w = 24;
    const bar = this.total > 0 ? "[" + "#".repeat(Math.round(frac * w)).padEnd(w, ".") + "] " : "";
    const line = `${this.label} ${bar}${this.#done}${this.total > 0 ? "/" + this.total : ""} ` +
      `${rate.toFixed(1)} ${this.unit}/s ${
        final ? `${secs.toFixed(1)}s` : `ETA ${eta.toFixed(0)}s`
      }` +
      (status ? ` ${status}` : "");
    if (this.#tty) Deno.stderr.writeSync(this.#enc.encode(`\r\x1b[2K${line}${final ? "\n" : ""}`));
    else Deno.stderr.writeSync(this.#enc.encode(line + "\n"));
  }

  /** Prints the final line of the stage. */
  done(status = ""): void {
    this.#print(status, true);
  }
}
