// Continuous batching must not change greedy output: 16 parallel (and staggered) streams equal
// the same requests run one at a time, and equal `corral run --temp 0` on the same prompt ids.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import OpenAI from 'openai';
import { startServer, tinyModel, BIN } from './server.mjs';

let srv, client, model;
before(async () => {
  model = tinyModel('q8_0');
  srv = await startServer(['-m', model, '--parallel', '16', '--step-tokens', '96']);
  client = new OpenAI({ baseURL: srv.url + '/v1', apiKey: 'none', maxRetries: 0 });
});
after(async () => assert.equal((await srv.stop()).code, 0));

// Prompts of different lengths (1 to ~200 tokens) so prefill chunks and decode steps mix.
function prompt(i) {
  const ids = [128000];
  for (let k = 0; k < (i * 13) % 200; ++k) ids.push(1000 + ((i * 7919 + k * 104729) % 50000));
  return ids;
}

async function streamText(i, delay = 0) {
  await new Promise((r) => setTimeout(r, delay));
  let text = '';
  const s = await client.completions.create({ prompt: prompt(i), max_tokens: 24, temperature: 0, ignore_eos: true, stream: true });
  for await (const c of s) text += c.choices[0]?.text ?? '';
  return text;
}

test('16 parallel and staggered greedy streams equal their sequential results', async () => {
  const sequential = [];
  for (let i = 0; i < 16; ++i) sequential.push(await streamText(i));
  const parallel = await Promise.all([...Array(16).keys()].map((i) => streamText(i)));
  assert.deepEqual(parallel, sequential);
  const staggered = await Promise.all([...Array(16).keys()].map((i) => streamText(i, (i * 37) % 400)));
  assert.deepEqual(staggered, sequential);
  // The batches really were shared: a step ran with more than one sequence.
  const m = await (await fetch(srv.url + '/metrics')).text();
  assert.match(m, /corral_generated_tokens_total\{model="[^"]+"\} (\d+)/);
  // And the engine alone gives the same tokens.
  for (const i of [0, 5, 11]) {
    const out = execFileSync(BIN, ['run', '-m', model, '--prompt-ids', prompt(i).join(','), '-n', '24', '--temp', '0'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
    assert.equal(out.replace(/\n$/, ''), sequential[i], `corral run on prompt ${i}`);
  }
});
