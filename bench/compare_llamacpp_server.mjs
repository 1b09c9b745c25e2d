// Driver for bench/compare-llamacpp-server: starts each server on a free port, waits for
// /health, runs `corral bench-serve --json` against it, stops it by PID; engines alternate.
import { spawn, execFileSync } from "node:child_process";
import net from "node:net";
import { tmpdir } from "node:os";

const args = process.argv.slice(2);
const model = args[0];
const opt = (flag, def) => { const i = args.indexOf(flag); return i >= 0 ? Number(args[i + 1]) : def; };
const T = opt("-t", 2), P = opt("--parallel", 16), R = opt("--requests", 64), PT = opt("--prompt-tokens", 128),
  MT = opt("--max-tokens", 64), rounds = opt("-r", 1);
if (!model) { console.error("usage: compare-llamacpp-server MODEL.gguf [-t T] [--parallel P] [--requests N] [--prompt-tokens N] [--max-tokens N] [-r R]"); process.exit(2); }
const corral = process.env.CORRAL_BIN, llamaServer = process.env.LLAMA_SERVER;

const freePort = () => new Promise((res) => { const s = net.createServer(); s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => res(p)); }); });
async function up(url) {
  for (let i = 0; i < 1200; ++i) {
    try { if ((await fetch(url + "/health")).status === 200) return; } catch {}
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error("server did not come up: " + url);
}
async function run(engine) {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const ctx = P * (PT + MT + 32);
  const argv = engine === "llama-server"
    ? [llamaServer, ["-m", model, "-t", String(T), "-tb", String(T), "-np", String(P), "-c", String(ctx), "--port", String(port), "--host", "127.0.0.1", "-cb"]]
    : [corral, ["serve", "--ledger", `sqlite:${tmpdir()}/corral-bench-${process.pid}-${port}.db`, "-m", model, "-t", String(T), "--parallel", String(P), "--port", String(port), "--ctx-size", String(PT + MT + 32)]];
  const proc = spawn(argv[0], argv[1], { stdio: "ignore" });
  try {
    await up(url);
    const out = execFileSync(corral, ["bench-serve", url, "--concurrency", String(P), "--requests", String(R),
      "--prompt-tokens", String(PT), "--max-tokens", String(MT), "--json"], { encoding: "utf8" });
    return JSON.parse(out);
  } finally {
    proc.kill("SIGTERM");
    await new Promise((r) => proc.on("exit", r));
  }
}
const results = { "llama-server": [], corral: [] };
for (let r = 0; r < rounds; ++r)
  for (const e of r % 2 ? ["corral", "llama-server"] : ["llama-server", "corral"]) results[e].push(await run(e));
const mean = (e, k) => results[e].reduce((a, x) => a + x[k], 0) / results[e].length;
const name = model.split("/").pop();
console.log(`${name}, ${T} threads, ${P} slots/streams, ${R} requests, prompt ${PT}, ${MT} tokens out, ${rounds} round(s)`);
console.log("| metric | llama-server | corral | corral / llama-server |");
console.log("|---|---|---|---|");
for (const [k, label, d] of [["generated_tok_s", "aggregate generated tok/s", 2], ["requests_s", "requests/s", 3],
  ["ttft_p50_s", "TTFT p50 (s)", 2], ["ttft_p99_s", "TTFT p99 (s)", 2], ["itl_p50_s", "ITL p50 (s)", 3], ["itl_p99_s", "ITL p99 (s)", 3]]) {
  const l = mean("llama-server", k), c = mean("corral", k);
  console.log(`| ${label} | ${l.toFixed(d)} | ${c.toFixed(d)} | ${(c / l).toFixed(2)} |`);
}
