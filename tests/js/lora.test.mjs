// LoRA adapters served over one base: 8 adapters trained here (corral finetune, a few steps each)
// and the base, 16 concurrent greedy streams over them in one batch, each equal to its adapter
// run alone; /v1/models lists them with their parent; the admin API adds one under load (from
// --lora-dir only) and removes one (404 model_not_found afterwards); the ledger records the
// adapter's id.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { startServer, tinyModel, BIN } from './server.mjs';

const ADMIN = 'admin-key-for-lora-tests-0123456789';
const dir = mkdtempSync(join(tmpdir(), 'corral-lora-'));
const loraDir = join(dir, 'adapters');
let srv, client, ledger, base;

function train(name, seed, text) {
  const data = join(dir, `${name}.jsonl`);
  writeFileSync(data, [0, 1, 2, 3].map((i) => JSON.stringify({ text: `${text} ${i}` })).join('\n') + '\n');
  const out = join(loraDir, `${name}.gguf`);
  execFileSync(BIN, ['finetune', '-m', base, '--data', data, '-o', out, '--rank', String(2 + (seed % 3) * 2), '--steps', '2',
    '--lr', '0.05', '--seed', String(seed), '--no-progress', '-t', '2'], { stdio: 'ignore' });
  return out;
}

before(async () => {
  base = tinyModel('q8_0');
  mkdirSync(loraDir);
  const specs = [];
  for (let k = 0; k < 8; ++k) specs.push('--lora', `ad${k}=${train(`ad${k}`, k, `Adapter ${k} says ${'abc'.repeat(k + 1)}.`)}`);
  train('late', 99, 'A late adapter.');
  writeFileSync(join(dir, 'admin.key'), ADMIN + '\n', { mode: 0o600 });
  ledger = `sqlite:${join(dir, 'ledger.db')}`;
  const tenant = JSON.parse(execFileSync(BIN, ['tenant', 'add', 'acme', '--json', '--ledger', ledger], { encoding: 'utf8' }));
  srv = await startServer(['-m', `base=${base}`, ...specs, '--lora-dir', loraDir, '--parallel', '16', '--ledger', ledger,
    '--admin-key-file', join(dir, 'admin.key')]);
  client = new OpenAI({ baseURL: srv.url + '/v1', apiKey: tenant.api_key, maxRetries: 0 });
});
after(async () => { await srv.stop(); });

const ask = (model, i, stream = false) => ({ model, prompt: `Story ${i % 3}:`, max_tokens: 24, temperature: 0, stream });
async function text(params) {
  if (!params.stream) return (await client.completions.create(params)).choices[0].text;
  let s = '';
  for await (const c of await client.completions.create(params)) s += c.choices[0]?.text ?? '';
  return s;
}
const admin = (method, path, body) => fetch(srv.url + path, { method, headers: { Authorization: `Bearer ${ADMIN}`, 'Content-Type': 'application/json' },
  body: body ? JSON.stringify(body) : undefined });

test('the adapters are models with their parent', async () => {
  const ids = (await client.models.list()).data.map((m) => [m.id, m.parent]);
  assert.deepEqual(ids.find((x) => x[0] === 'base'), ['base', null]);
  for (let k = 0; k < 8; ++k) assert.deepEqual(ids.find((x) => x[0] === `ad${k}`), [`ad${k}`, 'base']);
});

test('16 streams over 8 adapters and the base, in one batch, each equal to its adapter alone', async () => {
  const models = Array.from({ length: 16 }, (_, i) => (i % 9 === 8 ? 'base' : `ad${i % 9}`));
  const alone = new Map();
  for (let i = 0; i < 16; ++i) {
    const key = `${models[i]}/${i % 3}`;
    if (!alone.has(key)) alone.set(key, await text(ask(models[i], i)));
  }
  // The adapters change what the model says (else equality would prove nothing).
  const outs = new Set([...alone.values()]);
  assert.ok(outs.size >= 8, `only ${outs.size} different outputs over ${alone.size} (model, prompt) pairs`);
  for (let round = 0; round < 2; ++round) {
    const got = await Promise.all(models.map((m, i) => text(ask(m, i, (i + round) % 2 === 0))));
    got.forEach((g, i) => assert.equal(g, alone.get(`${models[i]}/${i % 3}`), `round ${round}, stream ${i} (${models[i]})`));
  }
});

test('adding an adapter under load, then removing one', async () => {
  const load = Promise.all(Array.from({ length: 8 }, (_, i) => text({ ...ask(`ad${i}`, i), max_tokens: 64 })));
  // Outside --lora-dir: refused, nothing added.
  let r = await admin('POST', '/admin/v1/adapters', { id: 'evil', path: '/etc/passwd' });
  assert.equal(r.status, 403);
  r = await admin('POST', '/admin/v1/adapters', { id: 'late', path: join(loraDir, '..', 'adapters', 'late.gguf') });
  assert.equal(r.status, 201, await r.clone().text());
  assert.equal((await r.json()).parent, 'base');
  r = await admin('POST', '/admin/v1/adapters', { id: 'late', path: join(loraDir, 'late.gguf') });
  assert.equal(r.status, 409);
  // Without the admin key: refused.
  r = await fetch(srv.url + '/admin/v1/adapters', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"id":"x","path":"y"}' });
  assert.ok(r.status === 401 || r.status === 403, String(r.status));
  const late = await text(ask('late', 0));
  assert.equal(await text(ask('late', 0, true)), late);
  await load;
  r = await admin('DELETE', '/admin/v1/adapters/ad7');
  assert.equal(r.status, 200);
  await assert.rejects(client.completions.create(ask('ad7', 0)), (e) => e.status === 404 && e.code === 'model_not_found');
  assert.ok(!(await client.models.list()).data.some((m) => m.id === 'ad7'));
  r = await admin('DELETE', '/admin/v1/adapters/base');
  assert.equal(r.status, 404, 'a base is not an adapter');
});

test("the ledger records each request under the adapter's id", async () => {
  await text(ask('ad3', 1));
  const rows = execFileSync(BIN, ['usage', '--json', '--ledger', ledger], { encoding: 'utf8' }).split('\n').filter(Boolean).map((l) => JSON.parse(l));
  assert.ok(rows.some((r) => r.model === 'ad3' && r.tenant === 'acme' && r.completion_tokens > 0), JSON.stringify(rows.slice(0, 3)));
  assert.ok(rows.some((r) => r.model === 'base'));
});
