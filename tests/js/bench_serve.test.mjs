// `corral bench-serve` against a scripted OpenAI-style server whose every byte the test knows
// (so the counts it prints can be checked exactly), and once against `corral serve`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { execFile } from 'node:child_process';
import { BIN, startServer, tinyModel } from './server.mjs';

// mode 'ok': text chunks; every third request streams only empty text (as a random model whose
// tokens never complete a character would) but ends with usage and [DONE].
// mode 'broken': 200, no text, no usage, no [DONE].
function fakeServer(mode) {
  const seen = [];
  const srv = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const json = (o) => { res.writeHead(200, { 'Content-Type': 'application/json' }); res.end(JSON.stringify(o)); };
      if (req.method === 'GET' && req.url === '/v1/models') return json({ object: 'list', data: [{ id: 'fake-model', object: 'model' }] });
      if (req.url === '/tokenize') return json({ tokens: [...Array(500).keys()].map((i) => 1000 + i) });
      if (req.url !== '/v1/completions') { res.writeHead(404); return res.end(); }
      const r = JSON.parse(body);
      const n = seen.push(r);
      res.writeHead(200, { 'Content-Type': 'text/event-stream' });
      const send = (o) => res.write(`data: ${JSON.stringify(o)}\n\n`);
      if (mode === 'broken') return res.end();
      const silent = n % 3 === 0;
      for (let i = 0; i < r.max_tokens; ++i)
        send({ object: 'text_completion', choices: [{ index: 0, text: silent ? '' : `t${i} `, finish_reason: null }] });
      send({ object: 'text_completion', choices: [{ index: 0, text: '', finish_reason: 'length' }] });
      send({ object: 'text_completion', choices: [], usage: { prompt_tokens: r.prompt.length, completion_tokens: r.max_tokens, total_tokens: r.prompt.length + r.max_tokens } });
      res.end('data: [DONE]\n\n');
    });
  });
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve({ srv, seen, url: `http://127.0.0.1:${srv.address().port}` })));
}

const run = (args) => new Promise((resolve) => execFile(BIN, ['bench-serve', ...args], { timeout: 120000 }, (err, stdout, stderr) => resolve({ code: err ? err.code : 0, stdout, stderr })));

test('bench-serve counts exactly what the server streamed, silent streams included', async () => {
  const f = await fakeServer('ok');
  try {
    const r = await run([f.url, '--concurrency', '4', '--requests', '12', '--prompt-tokens', '16', '--max-tokens', '5', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.model, 'fake-model');
    assert.equal(out.requests, 12);
    assert.equal(out.failed, 0);
    assert.equal(out.generated_tokens, 12 * 5);
    assert.ok(out.ttft_p50_s > 0 && out.itl_p50_s >= 0);
    assert.equal(f.seen.length, 12);
    const prompts = new Set();
    for (const q of f.seen) {
      assert.equal(q.model, 'fake-model');
      assert.equal(q.stream, true);
      assert.equal(q.max_tokens, 5);
      assert.equal(q.prompt.length, 16, 'exactly --prompt-tokens ids');
      prompts.add(JSON.stringify(q.prompt));
    }
    assert.equal(prompts.size, 12, 'every prompt differs');
  } finally {
    f.srv.close();
  }
});

test('bench-serve reports streams that end with nothing as failed and exits non-zero', async () => {
  const f = await fakeServer('broken');
  try {
    const r = await run([f.url, '--concurrency', '2', '--requests', '3', '--prompt-tokens', '8', '--max-tokens', '2']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /3 requests failed; first: the stream ended with no text and no usage/);
  } finally {
    f.srv.close();
  }
});

test('bench-serve against corral serve: every generated token is counted', async () => {
  const srv = await startServer(['-m', tinyModel('q4_0'), '--parallel', '8']);
  try {
    const r = await run([srv.url, '--concurrency', '8', '--requests', '40', '--prompt-tokens', '8', '--max-tokens', '4', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.failed, 0);
    assert.equal(out.generated_tokens, 40 * 4);  // ignore_eos: every request runs to max_tokens
  } finally {
    assert.equal((await srv.stop()).code, 0);
  }
});
