// The README's "Host a Llama in five minutes": its shell block, run as written (only the port is
// swapped for a free one), with `corral` the built binary and the openai package of tests/js.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, symlinkSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { BIN } from './server.mjs';

const here = dirname(new URL(import.meta.url).pathname);
const README = resolve(here, '../../README.md');

// A README block between <!-- NAME:start --> and <!-- NAME:end -->, run with bash in a fresh
// folder (its port swapped for a free one); returns the output and the port.
function runBlock(name, readmePort) {
  const md = readFileSync(README, 'utf8');
  const block = md.split(`<!-- ${name}:start -->`)[1]?.split(`<!-- ${name}:end -->`)[0];
  assert.ok(block, `the README has the ${name} block`);
  let script = block.replace(/^\s*```sh\n/, '').replace(/```\s*$/, '');
  const port = String(21000 + Math.floor(Math.random() * 20000));
  script = script.replaceAll(readmePort, port);
  const dir = mkdtempSync(join(tmpdir(), 'corral-walk-'));
  mkdirSync(join(dir, 'bin'));
  symlinkSync(resolve(BIN), join(dir, 'bin', 'corral'));
  symlinkSync(join(here, 'node_modules'), join(dir, 'node_modules'));
  // On failure the server must not outlive the test: the trap kills what is still running.
  const r = spawnSync('bash', ['-c', `set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n${script}\nwait`], {
    cwd: dir, encoding: 'utf8', timeout: 240000,
    env: { ...process.env, PATH: `${join(dir, 'bin')}:${process.env.PATH}`, CORRAL_LEDGER: '' },
  });
  assert.equal(r.status === 0 || r.status === 143 ? 0 : r.status, 0, `exit ${r.status}\n${r.stdout}\n${r.stderr}`);
  assert.equal(spawnSync('curl', ['-sf', `http://127.0.0.1:${port}/health`]).status !== 0, true, 'the server is stopped');
  return { out: r.stdout, dir };
}

test('README walk-through runs as written', () => {
  const { out, dir } = runBlock('walkthrough', '8090');
  assert.match(out, /"object":"chat\.completion"/, out);
  assert.match(out, /Llama-3\.1-demo \{/, 'the openai client got an answer');
  const overall = out.split('\n').find((l) => l.startsWith('overall_total,'));
  assert.ok(overall, out);
  const f = overall.split(',');
  assert.equal(Number(f[7]), 2, 'two requests billed');
  assert.ok(Number(f[11]) > 0, 'a non-zero amount');
  assert.equal(f[14], 'USD');
  assert.ok(existsSync(join(dir, 'statement.pdf')));
});

test("README's embeddings and Responses API examples run as written", () => {
  const { out } = runBlock('api-examples', '8091');
  const lines = out.split('\n');
  // corral embed: two arrays of 4 values, each of norm 1.
  const arrays = lines.filter((l) => l.startsWith('[')).map((l) => JSON.parse(l));
  assert.equal(arrays.length, 2, out);
  for (const a of arrays) {
    assert.equal(a.length, 4);
    assert.ok(Math.abs(Math.hypot(...a) - 1) < 1e-5);
  }
  const emb = JSON.parse(lines.find((l) => l.includes('"object":"list"')));
  assert.equal(emb.data.length, 2);
  assert.equal(emb.data[1].embedding.length, 4);
  const resp = JSON.parse(lines.find((l) => l.includes('"object":"response"')));
  assert.equal(resp.output[0].type, 'message');
  assert.equal(resp.instructions, 'Be brief.');
  assert.match(out, /embedding of \d+ values/);
  const m = out.match(/cached (\d+) of (\d+)/);
  assert.ok(m, out);
  assert.ok(Number(m[1]) >= 16, `the follow-up hit the prefix cache: ${m[0]}`);
});

test("README's consortium walk-through runs as written", () => {
  const { out } = runBlock('consortium', '8092');
  assert.match(out, /^globex: 200$/m, out);
  assert.match(out, /^outsider: 404$/m, 'members only at first');
  assert.match(out, /^outsider: 200$/m, 'then public');
  const rows = Object.fromEntries(out.split('\n').filter((l) => /^(Acme|Globex|Initech),/.test(l)).map((l) => [l.split(',')[0], l.split(',')]));
  assert.deepEqual(Object.keys(rows).sort(), ['Acme', 'Globex', 'Initech']);
  assert.equal(rows.Initech[2], '250.000000', 'the money contribution');
  assert.ok(Number(rows.Acme[3]) > 0 && Number(rows.Globex[3]) > 0 && Number(rows.Initech[3]) === 0, 'compute given by the two trainers');
  const job = out.split('\n').find((l) => l.startsWith('custom-v1,'));
  assert.ok(job, out);
  const f = job.split(',');
  const cost = Math.round(Number(f[3]) * 1e6);
  assert.equal(Math.round(Number(f[4]) * 1e6) + Math.round(Number(f[5]) * 1e6) + Math.round(Number(f[6]) * 1e6), cost, 'the parts add up to the cost');
  assert.ok(Number(rows.Acme[5]) > 0, 'revenue paid back once public');
});

test("README's fine-tuning example runs as written", () => {
  const { out, dir } = runBlock('finetune', 'no-port');
  const log = readFileSync(join(dir, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(log.length, 4, 'two epochs of two steps');
  assert.ok(log.at(-1).loss < log[0].loss, `the loss falls: ${log[0].loss} -> ${log.at(-1).loss}`);
  assert.ok(log.at(-1).val_loss > 0 && Number.isFinite(log.at(-1).val_loss), 'a validation loss at the end');
  for (const f of ['gpl.gguf', 'merged.gguf', 'ckpt/step-2/adapter.gguf', 'ckpt/step-4/state.json']) assert.ok(existsSync(join(dir, f)), f);
  assert.match(out, /rank:\s+8/, out);
  assert.match(out, /alpha:\s+16/, out);
});
