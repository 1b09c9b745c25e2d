// Driver for bench/compare-llamacpp (native): llama-bench -o json and corral bench --json on the
// same file, threads and lengths, alternated once per repetition block; prints the table.
import { execFileSync } from "node:child_process";

const args = process.argv.slice(2);
const model = args[0];
const opt = (flag, def) => { const i = args.indexOf(flag); return i >= 0 ? Number(args[i + 1]) : def; };
const T = opt("-t", 2), P = opt("-p", 128), N = opt("-n", 64), R = opt("-r", 3);
if (!model) { console.error("usage: compare-llamacpp MODEL.gguf [-t T] [-p P] [-n N] [-r R]"); process.exit(2); }
const lb = JSON.parse(execFileSync(process.env.LLAMA_BENCH, ["-m", model, "-t", String(T), "-p", String(P), "-n", String(N), "-r", String(R), "-o", "json"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }));
const cb = JSON.parse(execFileSync(process.env.CORRAL_BIN, ["bench", "-m", model, "-t", String(T), "-p", String(P), "-n", String(N), "-r", String(R), "--json"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }));
const lpp = lb.find((x) => x.n_prompt === P && x.n_gen === 0), ltg = lb.find((x) => x.n_gen === N && x.n_prompt === 0);
const name = model.split("/").pop();
console.log(`| model | threads | test | corral t/s | llama.cpp (native llama-bench) t/s | ratio |`);
console.log(`|---|---|---|---|---|---|`);
console.log(`| ${name} | ${T} | pp${P} | ${cb.pp_tok_s.toFixed(2)} ± ${cb.pp_tok_s_sd.toFixed(2)} | ${lpp.avg_ts.toFixed(2)} ± ${lpp.stddev_ts.toFixed(2)} | ${(cb.pp_tok_s / lpp.avg_ts).toFixed(2)} |`);
console.log(`| ${name} | ${T} | tg${N} | ${cb.tg_tok_s.toFixed(2)} ± ${cb.tg_tok_s_sd.toFixed(2)} | ${ltg.avg_ts.toFixed(2)} ± ${ltg.stddev_ts.toFixed(2)} | ${(cb.tg_tok_s / ltg.avg_ts).toFixed(2)} |`);
console.log(`corral: peak RSS ${cb.peak_rss_mib.toFixed(0)} MiB, isa ${cb.isa}; llama.cpp build ${lpp.build_commit ?? "?"}`);
