// `make run`'s server start (scripts/demo.sh) in the background: it creates the demo tenant and
// keys (mode 0600) on the first run, prints the chat URL, the dashboard URL and a curl command
// that works as printed, and stops cleanly on SIGINT; a second run reuses the ledger and key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { BIN } from './server.mjs';

const SCRIPT = resolve(new URL('../../scripts/demo.sh', import.meta.url).pathname);
const FIXTURES = process.env.CORRAL_FIXTURES ?? resolve(new URL('../../../shared/fixtures', import.meta.url).pathname);

function startDemo(models, dir, port) {
  const proc = spawn(SCRIPT, [BIN, dir, ...models], { env: { ...process.env, DEMO_PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'] });
  const out = [], err = [];
  proc.stderr.on('data', (d) => err.push(d.toString()));
  const exited = new Promise((r) => proc.on('exit', (code, sig) => r({ code, sig })));
  const lines = new Promise((res, rej) => {
    let buf = '';
    const timer = setTimeout(() => rej(new Error('demo did not print its lines: ' + err.join(''))), 60000);
    proc.stdout.on('data', (d) => {
      buf += d.toString();
      const ls = buf.split('\n').filter(Boolean);
      if (ls.length >= 3) { clearTimeout(timer); out.push(...ls); res(ls); }
    });
    proc.on('exit', () => { clearTimeout(timer); rej(new Error('demo exited: ' + err.join(''))); });
  });
  return { proc, lines, exited, err };
}

test('make run: demo tenant, three lines, the printed curl works, Ctrl-C stops it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'corral-demo-'));
  const model = join(dir, 'aidreams260K.gguf');
  execFileSync(BIN, ['convert', join(FIXTURES, 'llama2c/aidreams260K.bin'), model, '--tokenizer', join(FIXTURES, 'llama2c/tok512.bin')], { stdio: 'ignore' });
  const tiny = join(dir, 'Llama-3-tiny-random.gguf');
  execFileSync(BIN, ['synth', '--shape', 'tiny', '--type', 'q8_0', '--seed', '1', '--license', 'llama3', tiny], { stdio: 'ignore' });
  const port = 20000 + Math.floor(Math.random() * 20000);
  const d = startDemo([model, tiny], dir, port);
  let key;
  try {
    const [chat, dash, curl] = await d.lines;
    assert.match(chat, /^chat: +http:\/\/127\.0\.0\.1:\d+\/$/);
    assert.match(dash, /^dashboard: +http:\/\/127\.0\.0\.1:\d+\/usage$/);
    assert.match(curl, /^curl /);
    const url = chat.split(/\s+/)[1];
    assert.equal((await fetch(url)).status, 200, 'the chat page is served');
    assert.equal((await fetch(dash.split(/\s+/)[1])).status, 200);
    for (const f of ['demo-key.txt', 'demo-admin-key.txt'])
      assert.equal(statSync(join(dir, f)).mode & 0o777, 0o600, f);
    key = readFileSync(join(dir, 'demo-key.txt'), 'utf8').trim();
    assert.match(key, /^sk-corral-/);
    // The curl line, run as printed.
    const answer = JSON.parse(execFileSync('bash', ['-c', curl], { encoding: 'utf8' }));
    assert.equal(answer.object, 'chat.completion');
    assert.ok(answer.choices[0].message.content.length > 0);
    assert.ok(answer.usage.completion_tokens > 0);
    // The key is required (the demo ledger has a tenant); both models are served, the second
    // with its Llama 3 attribution.
    assert.equal((await fetch(url + 'v1/models')).status, 401);
    const models = await (await fetch(url + 'v1/models', { headers: { Authorization: `Bearer ${key}` } })).json();
    assert.deepEqual(models.data.map((m) => m.id), ['aidreams260K', 'Llama-3-tiny-random']);
    assert.equal(models.data[1].attribution, 'Built with Meta Llama 3');
  } finally {
    d.proc.kill('SIGINT');
  }
  const r = await d.exited;
  assert.equal(r.code, 0, 'stopped cleanly: ' + d.err.join('').slice(-500));
  assert.match(d.err.join(''), /stopped/);
  await assert.rejects(fetch(`http://127.0.0.1:${port}/health`), 'nothing listens any more');
  // Second run: same ledger and key; the usage is still there.
  const d2 = startDemo([model, tiny], dir, port);
  try {
    await d2.lines;
    assert.equal(readFileSync(join(dir, 'demo-key.txt'), 'utf8').trim(), key);
    const usage = await (await fetch(`http://127.0.0.1:${port}/v1/usage`, { headers: { Authorization: `Bearer ${key}` } })).json();
    assert.equal(usage.totals.requests, 1);
  } finally {
    d2.proc.kill('SIGTERM');
  }
  assert.equal((await d2.exited).code, 0);
});
