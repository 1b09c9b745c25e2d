// Hostile and unlucky clients: oversize bodies, requests sent half-way and abandoned, 1,000 idle
// keep-alive connections next to 256 streams, clients that vanish mid-stream, a full queue, and
// shutdown with a stream still running; a model that does not load; hub-style model ids.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, startServer, tinyModel, metric, sseEvents } from './server.mjs';

const post = (url, path, body, signal) =>
  fetch(url + path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body), signal });

// A separate Node process (its own event loop and connection) that times n /health round trips
// 100 ms apart. It starts and makes one untimed request first, so that what is timed is the
// server, not a cold process compiling fetch on a loaded machine; start() then runs the probes
// and resolves to their latencies in ms.
async function healthProber(url, n) {
  const code = `const get = async () => { const r = await fetch(${JSON.stringify(url + '/health')}); await r.arrayBuffer();
      if (r.status !== 200) { console.error('status ' + r.status); process.exit(1); } };
    await get(); console.log('ready');
    await new Promise((z) => process.stdin.once('data', z));
    const l = []; for (let i = 0; i < ${n}; ++i) { const t = performance.now(); await get();
      l.push(performance.now() - t); await new Promise((z) => setTimeout(z, 100)); }
    console.log(JSON.stringify(l)); process.exit(0);`;
  let out = '';
  let ready;
  const isReady = new Promise((r) => (ready = r));
  const done = new Promise((resolve, reject) => {
    const child = execFile(process.execPath, ['--input-type=module', '-e', code], { timeout: 60000 }, (err, o, errOut) => {
      if (err) reject(new Error(`health probe process failed: ${err.message} ${errOut}`));
      else resolve(JSON.parse(o.split('\n').filter((x) => x.startsWith('['))[0]));
    });
    child.stdout.on('data', (d) => { out += d; if (out.includes('ready')) ready(child); });
  });
  done.catch(() => {});
  const child = await Promise.race([isReady, done.then(() => { throw new Error('health prober ended early'); })]);
  return { start: () => { child.stdin.write('go\n'); return done; } };
}

async function healthMs(url) {
  const t = performance.now();
  const r = await fetch(url + '/health');
  assert.equal(r.status, 200);
  return performance.now() - t;
}

test('oversize bodies, half-sent requests and idle connections', async () => {
  const srv = await startServer(['-m', tinyModel('q4_0'), '--max-body', '64K', '--timeout', '2']);
  try {
    const big = await post(srv.url, '/v1/completions', JSON.stringify({ prompt: 'x'.repeat(100000) }));
    assert.equal(big.status, 413);
    assert.match(big.headers.get('content-type'), /^application\/json/);
    const b = await big.json();
    assert.equal(b.error.code, 'request_too_large');
    assert.ok('param' in b.error);
    // Half a request, then silence: the server drops it after --timeout and keeps answering.
    const stalled = net.connect(srv.port, '127.0.0.1');
    await new Promise((r) => stalled.on('connect', r));
    stalled.write('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{"model": "ti');
    stalled.resume();  // read (and drop) whatever the server answers, so 'close' can come
    const closed = new Promise((r) => stalled.on('close', r));
    assert.ok((await healthMs(srv.url)) < 1000, '/health answers while a request is stalled');
    const t0 = performance.now();
    await closed;
    assert.ok(performance.now() - t0 < 6000, 'stalled connection closed within the timeout');
    // Garbage instead of HTTP.
    const junk = net.connect(srv.port, '127.0.0.1');
    let reply = '';
    junk.on('data', (d) => (reply += d));
    await new Promise((r) => junk.on('connect', r));
    junk.write('\x00\x01\x02 GARBAGE\r\n\r\n');
    await new Promise((r) => junk.on('close', r));
    assert.match(reply, /^HTTP\/1\.1 400/);
    const ok = await post(srv.url, '/v1/completions', { prompt: 'hello', max_tokens: 2 });
    assert.equal(ok.status, 200, 'still serving');
  } finally {
    assert.equal((await srv.stop()).code, 0);
  }
});

test('1,000 idle keep-alive connections and 256 concurrent streams do not stall /health', async () => {
  const srv = await startServer(['-m', tinyModel('q4_0'), '--parallel', '16']);
  const idle = [];
  try {
    for (let i = 0; i < 1000; ++i) {
      const s = net.connect(srv.port, '127.0.0.1');
      idle.push(s);
      s.on('error', () => {});
    }
    await Promise.all(idle.map((s) => new Promise((r) => {
      s.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
      s.once('data', r);
    })));
    assert.ok((await healthMs(srv.url)) < 1000);
    const prober = await healthProber(srv.url, 5);
    const streams = [...Array(256).keys()].map(async (i) => {
      const r = await post(srv.url, '/v1/completions', { prompt: `story ${i}`, max_tokens: 4, ignore_eos: true, stream: true });
      assert.equal(r.status, 200);
      const ev = await sseEvents(r);
      assert.equal(ev.at(-1), '[DONE]');
    });
    // The probes run in a process of their own: in this one, fetch queues a probe behind the 256
    // streams it is driving (seconds on 2 cores), which says nothing about the server.
    const lat = await prober.start();
    await Promise.all(streams);
    // 256 clients connecting at once on 2 cores may delay one probe by about a second; a stall
    // (/health waiting behind generation or blocked connections) would be many seconds.
    assert.ok(Math.max(...lat) < 3000, `/health latencies under load: ${lat.map((x) => x.toFixed(0)).join(', ')} ms`);
  } finally {
    for (const s of idle) s.destroy();
    assert.equal((await srv.stop()).code, 0);
  }
});

test('clients that disconnect mid-stream are cancelled and their KV blocks return to the pool', async () => {
  const srv = await startServer(['-m', tinyModel('q4_0'), '--parallel', '8']);
  try {
    const aborted = [...Array(8).keys()].map(async (i) => {
      const ac = new AbortController();
      const r = await post(srv.url, '/v1/completions', { prompt: `a long answer ${i} `.repeat(10), max_tokens: 3000, ignore_eos: true, stream: true }, ac.signal);
      const reader = r.body.getReader();
      let chunks = 0;
      while (chunks < 5) { await reader.read(); ++chunks; }
      ac.abort();
    });
    await Promise.all(aborted);
    let used, running;
    for (let k = 0; k < 100; ++k) {
      used = await metric(srv.url, 'corral_kv_blocks_used');
      running = await metric(srv.url, 'corral_running_sequences');
      if (used === 0 && running === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(running, 0, 'no sequence left running');
    assert.equal(used, 0, 'every KV block back in the pool');
    assert.ok(srv.lines.some((l) => /cancelled/.test(l)), 'the log names the cancellation');
  } finally {
    assert.equal((await srv.stop()).code, 0);
  }
});

test('a full queue answers 429 with Retry-After', async () => {
  const srv = await startServer(['-m', tinyModel('q4_0'), '--parallel', '1', '--max-queue', '1']);
  try {
    const rs = await Promise.all([...Array(4).keys()].map((i) => post(srv.url, '/v1/completions', { prompt: `q ${i}`, max_tokens: 200, ignore_eos: true })));
    const codes = rs.map((r) => r.status).sort();
    assert.ok(codes.includes(429), `statuses ${codes}`);
    const r429 = rs.find((r) => r.status === 429);
    assert.ok(r429.headers.get('retry-after'));
    assert.equal((await r429.json()).error.code, 'queue_full');
    assert.ok(codes.includes(200));
  } finally {
    assert.equal((await srv.stop()).code, 0);
  }
});

test('SIGTERM: running streams finish, new requests get 503, exit 0', async () => {
  const srv = await startServer(['-m', tinyModel('q4_0')]);
  const stream = post(srv.url, '/v1/completions', { prompt: 'shutdown', max_tokens: 300, ignore_eos: true, stream: true });
  const res = await stream;
  const reader = res.body.getReader();
  await reader.read();
  process.kill(srv.proc.pid, 'SIGTERM');
  await new Promise((r) => setTimeout(r, 200));
  const late = await post(srv.url, '/v1/completions', { prompt: 'late', max_tokens: 2 }).catch(() => null);
  if (late) {
    assert.equal(late.status, 503);
    assert.ok(late.headers.get('retry-after'));
  }
  let text = '';
  const dec = new TextDecoder();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    text += dec.decode(value);
  }
  assert.match(text, /data: \[DONE\]/);
  const { code } = await srv.exited;
  assert.equal(code, 0);
});

test('a model that does not load: serve exits 1 naming it, at once (no hang)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'corral-badmodel-'));
  const junk = join(dir, 'junk.gguf');
  writeFileSync(junk, Buffer.from('GGUF\x03\x00\x00\x00this is not a model'));
  for (const spec of [join(dir, 'missing.gguf'), `m=${junk}`]) {
    const r = spawnSync(BIN, ['serve', '-m', spec, '--port', '0', '--ledger', `sqlite:${join(dir, 'l.db')}`],
      { encoding: 'utf8', timeout: 30000 });
    assert.notEqual(r.error?.code, 'ETIMEDOUT', `serve -m ${spec} hung: ${r.stderr}`);
    assert.equal(r.status, 1, `exit status for ${spec}: ${r.stderr}`);
    assert.match(r.stderr, /error: .*(missing\.gguf|junk\.gguf)/, r.stderr);
  }
});

test('a KV pool larger than the machine is refused at start, naming the flags', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'corral-bigkv-'));
  const r = spawnSync(BIN, ['serve', '-m', tinyModel('q4_0'), '--port', '0', '--kv-memory', '100000000', '--ledger', `sqlite:${join(dir, 'l.db')}`],
    { encoding: 'utf8', timeout: 30000 });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /KV pool \(100000000 MiB.*larger than this machine's memory.*lower --kv-memory/, r.stderr);
});

test('hub-style model ids (ID with a slash) are served under that id', async () => {
  const id = 'meta-llama/Tiny-Instruct';
  const srv = await startServer(['-m', `${id}=${tinyModel('q4_0')}`]);
  try {
    const models = await (await fetch(srv.url + '/v1/models')).json();
    assert.deepEqual(models.data.map((m) => m.id), [id]);
    const r = await fetch(srv.url + '/v1/completions', {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: id, prompt: 'Hello', max_tokens: 3, temperature: 0 }),
    });
    assert.equal(r.status, 200);
    assert.equal((await r.json()).model, id);
  } finally {
    assert.equal((await srv.stop()).code, 0);
  }
});
