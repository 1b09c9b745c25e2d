// Driver for bench/compare-llamacpp: measures llama.cpp through node-llama-cpp in this process,
// Corral through `corral bench --json` and `corral run --print-ids`, and prints the table.
import {getLlama} from "node-llama-cpp";
import {execFileSync} from "node:child_process";
import {readFileSync} from "node:fs";

const args = process.argv.slice(2);
const model = args[0];
const opt = (flag, def) => { const i = args.indexOf(flag); return i >= 0 ? Number(args[i + 1]) : def; };
const threads = opt("-t", 2), P = opt("-p", 128), N = opt("-n", 64), reps = opt("-r", 3);
const corral = process.env.CORRAL_BIN;
if (!model) { console.error("usage: compare-llamacpp MODEL.gguf [-t T] [-p P] [-n N] [-r R]"); process.exit(2); }

const stats = (v) => { const m = v.reduce((a, b) => a + b, 0) / v.length;
  const sd = v.length > 1 ? Math.sqrt(v.reduce((a, b) => a + (b - m) ** 2, 0) / (v.length - 1)) : 0; return {m, sd}; };
const hwm = () => { const s = readFileSync("/proc/self/status", "utf8").match(/VmHWM:\s+(\d+)/); return s ? Number(s[1]) / 1024 : 0; };

// Deterministic prompt ids inside every vocabulary we synthesize (BOS of Llama 3 is 128000).
const promptIds = (n, vocab) => Array.from({length: n}, (_, i) => 1000 + ((i * 7919) % Math.min(20000, vocab - 1100)));

const llama = await getLlama({gpu: false, build: "never", logLevel: "error", maxThreads: threads});
const t0 = performance.now();
const lm = await llama.loadModel({modelPath: model, gpuLayers: 0});
const loadS = (performance.now() - t0) / 1000;
const ctx = await lm.createContext({contextSize: P + N + 64, batchSize: Math.max(P, 16), threads: {ideal: threads, min: threads}, sequences: 1});
const seq = ctx.getSequence();
const vocab = lm.tokens.bos != null ? 32000 : 32000;
const ids = promptIds(P, vocab);
const pp = [], tg = [];
await seq.evaluateWithoutGeneratingNewTokens(ids.slice(0, 16));  // warm-up
for (let r = 0; r < reps; r++) {
  await seq.clearHistory();
  let t = performance.now();
  await seq.evaluateWithoutGeneratingNewTokens(ids);
  pp.push(P / ((performance.now() - t) / 1000));
  await seq.clearHistory();
  let n = 0;
  t = performance.now();
  for await (const tok of seq.evaluate([ids[0]], {temperature: 0})) { if (++n >= N) break; }
  tg.push(N / ((performance.now() - t) / 1000));
}
await seq.clearHistory();
const g16 = ids.slice(0, 8);
const llamaGreedy = [];
for await (const tok of seq.evaluate(g16, {temperature: 0})) { llamaGreedy.push(tok); if (llamaGreedy.length >= 16) break; }
const llamaRss = hwm();

const cb = JSON.parse(execFileSync(corral, ["bench", "-m", model, "-t", String(threads), "-p", String(P), "-n", String(N), "-r", String(reps), "--json"], {encoding: "utf8", stdio: ["ignore", "pipe", "ignore"]}));
const cg = JSON.parse(execFileSync(corral, ["run", "-m", model, "-t", String(threads), "--prompt-ids", g16.join(","), "-n", "16", "--temp", "0", "--print-ids"], {encoding: "utf8", stdio: ["ignore", "pipe", "ignore"]}));
let agree = 0;
while (agree < 16 && cg[agree] === llamaGreedy[agree]) agree++;

const lp = stats(pp), lt = stats(tg);
const f = (s) => `${s.m.toFixed(2)} ± ${s.sd.toFixed(2)}`;
const name = model.split("/").pop();
console.log(`| model | threads | test | corral t/s | llama.cpp t/s | ratio |`);
console.log(`|---|---|---|---|---|---|`);
console.log(`| ${name} | ${threads} | pp${P} | ${cb.pp_tok_s.toFixed(2)} ± ${cb.pp_tok_s_sd.toFixed(2)} | ${f(lp)} | ${(cb.pp_tok_s / lp.m).toFixed(2)} |`);
console.log(`| ${name} | ${threads} | tg${N} | ${cb.tg_tok_s.toFixed(2)} ± ${cb.tg_tok_s_sd.toFixed(2)} | ${f(lt)} | ${(cb.tg_tok_s / lt.m).toFixed(2)} |`);
console.log(`peak RSS: corral ${cb.peak_rss_mib.toFixed(0)} MiB, llama.cpp ${llamaRss.toFixed(0)} MiB (node process); load: corral ${cb.load_s.toFixed(2)} s, llama.cpp ${loadS.toFixed(2)} s`);
console.log(`greedy: first 16 tokens ${agree === 16 ? "agree" : `differ at ${agree}`} (corral isa ${cb.isa})`);
await ctx.dispose(); await lm.dispose();
