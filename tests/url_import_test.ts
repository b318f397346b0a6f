// Use by URL: serve the repository over HTTP on 127.0.0.1 and run, in a separate process with no
// file-read permission, a script that imports http://127.0.0.1:PORT/mod.ts and prunes a small
// random model through the public API. Proves that nothing in the module reads files beside itself.
import { assert, ROOT } from "./helpers.ts";

const TYPES: Record<string, string> = {
  ts: "application/typescript",
  wgsl: "text/plain",
  json: "application/json",
};

Deno.test("mod.ts imported by URL prunes a model with no file access", async () => {
  const ac = new AbortController();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    signal: ac.signal,
    onListen: () => {},
  }, async (req) => {
    const path = decodeURIComponent(new URL(req.url).pathname);
    if (path.includes("..")) return new Response("no", { status: 400 });
    try {
      const body = await Deno.readFile(ROOT + path.slice(1));
      const ext = path.split(".").pop() ?? "";
      return new Response(body, {
        headers: { "content-type": TYPES[ext] ?? "application/octet-stream" },
      });
    } catch {
      return new Response("not found", { status: 404 });
    }
  });
  const port = server.addr.port;
  const dir = await Deno.makeTempDir();
  const script = `${dir}/use.ts`;
  await Deno.writeTextFile(
    script,
    `
import { createRandomModel, makeConfig, prune, runModel, getGpu } from "http://127.0.0.1:${port}/mod.ts";
const gpu = await getGpu();
const config = makeConfig({ arch: "bert", head: "classification", numLabels: 2, vocabSize: 30, hiddenSize: 16,
  numLayers: 2, numHeads: 2, intermediateSize: 16, maxPositions: 16, typeVocabSize: 2 });
const model = await createRandomModel(config, 3, gpu);
const B = 8, S = 6;
const batch = { size: B, seqLen: S, inputIds: Int32Array.from({ length: B * S }, (_, i) => 1 + (i * 7) % 29),
  attentionMask: new Int32Array(B * S).fill(1), labels: Int32Array.from({ length: B }, (_, i) => i % 2) };
const r = await prune(model, [batch], { budget: { flops: 0.5 }, seqLen: 6 });
const out = await runModel(r.compact, batch, { maskGrads: false });
console.log(JSON.stringify({ ratio: r.report.macs.ratio, logits: out.logits.length }));
`,
  );
  const cmd = new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-lock", `--allow-import=127.0.0.1:${port}`, "--allow-env", script],
    cwd: dir,
    env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp", DENO_NO_UPDATE_CHECK: "1" },
    stdout: "piped",
    stderr: "piped",
  });
  const res = await cmd.output();
  ac.abort();
  await server.finished;
  const stdout = new TextDecoder().decode(res.stdout);
  const stderr = new TextDecoder().decode(res.stderr);
  await Deno.remove(dir, { recursive: true });
  assert(res.code === 0, `script failed (${res.code}):\n${stderr.slice(-2000)}`);
  const j = JSON.parse(stdout.trim().split("\n").pop()!);
  assert(j.ratio <= 0.5 && j.logits === 8, stdout);
});
