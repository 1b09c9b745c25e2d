// Loads a GGUF written by Corral in llama.cpp (node-llama-cpp's prebuilt binary) and prints
// llama.cpp's greedy continuation of the given ids as a JSON array (with a LoRA adapter, a GGUF
// in llama.cpp's adapter format, when a fourth argument names one).
import {getLlama} from "node-llama-cpp";
const [model, idsArg, nArg, lora] = process.argv.slice(2);
const ids = idsArg.split(",").map(Number);
const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const lm = await llama.loadModel({modelPath: model, gpuLayers: 0});
const ctx = await lm.createContext({contextSize: 128, threads: 1, ...(lora ? {lora: {adapters: [{filePath: lora}]}} : {})});
const seq = ctx.getSequence();
const out = [];
for await (const tok of seq.evaluate(ids, {temperature: 0})) { out.push(tok); if (out.length >= Number(nArg)) break; }
console.log(JSON.stringify(out));
await ctx.dispose(); await lm.dispose();
