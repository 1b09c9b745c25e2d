// Exact billing under kill -9, SQLite and PostgreSQL: 16 concurrent streams (no include_usage),
// the server killed at a random moment, five rounds; after a restart under the same --instance,
// every stream's record holds exactly the token chunks its client received, or one more (the
// chunk whose tokens were committed when the kill fell between the commit and the write: the
// bound Corral guarantees). A stream that received nothing is billed nothing; the statement of
// the period bills the records; `ledger verify` passes. Non-streamed answers received in full
// are completed with their usage.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, tinyModel, BIN } from './server.mjs';
import { startPostgres } from './postgres.mjs';

let pg;
before(async () => { pg = await startPostgres(); });
after(async () => { if (pg && !pg.skip) await pg.stop(); });

const corral = (dsn, ...args) => execFileSync(BIN, [...args, '--ledger', dsn], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const usageRecords = (dsn) => corral(dsn, 'usage', '--json').split('\n').filter(Boolean).map((l) => JSON.parse(l));

// Reads an SSE stream as it arrives; counts complete token chunks (events with choices[0].text).
async function streamCount(url, key, body, out) {
  const res = await fetch(url + '/v1/completions', { method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${key}` },
    body: JSON.stringify(body) });
  out.status = res.status;
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const ev = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (ev === 'data: [DONE]') { out.done = true; continue; }
        if (!ev.startsWith('data: {')) continue;
        const j = JSON.parse(ev.slice(6));
        out.id ??= j.id;
        const c = j.choices?.[0];
        if (c && typeof c.text === 'string' && c.finish_reason === null) out.tokens += 1;
        if (c?.finish_reason) out.finish = c.finish_reason;
      }
    }
  } catch { /* the server died under us */ }
}

for (const kind of ['sqlite', 'postgresql'])
test(`${kind}: kill -9 under 16 streams: each record holds the tokens its client received`, async (t) => {
  if (kind === 'postgresql' && (!pg || pg.skip)) return t.skip(pg?.skip ?? 'PostgreSQL not started');
  const dir = mkdtempSync(join(tmpdir(), 'corral-billing-'));
  const dsn = kind === 'sqlite' ? `sqlite:${join(dir, 'ledger.db')}` : pg.database();
  const tenant = JSON.parse(corral(dsn, 'tenant', 'add', 'payer', '--json'));
  corral(dsn, 'price', 'set', 'tiny', '--input', '1.00', '--output', '2.00', '--from', '2020-01-01T00:00:00Z');
  const streams = [];
  const t0 = Date.now();
  for (let round = 0; round < 5; ++round) {
    // 17 slots: the 16 endless streams and the non-streamed request below (with 16 it would wait
    // for a stream to fill its context, minutes on a slower kernel table).
    const srv = await startServer(['-m', `tiny=${tinyModel('q4_0')}`, '--ledger', dsn, '--instance', 'node-b', '--parallel', '17']);
    const mine = [...Array(16).keys()].map((i) => ({ tokens: 0, round, i }));
    const clients = mine.map((o, i) => streamCount(srv.url, tenant.api_key,
      { model: 'tiny', prompt: `tale ${round} ${i}`, max_tokens: 100000, ignore_eos: true, stream: true, temperature: 1, seed: i }, o));
    // A non-streamed answer in full before the kill: completed, with its usage.
    const full = await (await fetch(srv.url + '/v1/completions', { method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${tenant.api_key}` },
      body: JSON.stringify({ model: 'tiny', prompt: 'short', max_tokens: 5, ignore_eos: true }) })).json();
    streams.push({ full });
    await new Promise((r) => setTimeout(r, 150 + Math.floor(Math.random() * 700)));
    process.kill(srv.proc.pid, 'SIGKILL');
    await srv.exited;
    await Promise.all(clients);
    streams.push(...mine);
  }
  const srv = await startServer(['-m', `tiny=${tinyModel('q4_0')}`, '--ledger', dsn, '--instance', 'node-b']);
  assert.equal((await srv.stop()).code, 0);
  const byId = new Map(usageRecords(dsn).map((r) => [r.request_id, r]));
  let exact = 0, one_more = 0, received = 0, finished = 0, unseen = 0;
  for (const s of streams) {
    if (s.full) {
      const r = byId.get(s.full.id);
      assert.equal(r.status, 'completed');
      assert.equal(r.completion_tokens, s.full.usage.completion_tokens);
      continue;
    }
    if (!s.id) { ++unseen; continue; }  // killed before its first chunk: no id to look up
    const r = byId.get(s.id);
    assert.ok(r, `record for ${s.id}`);
    if (s.done) {  // finished before the kill: every token was a chunk
      assert.equal(r.status, 'completed', s.id);
      assert.equal(r.completion_tokens, s.tokens, s.id);
      ++finished;
      continue;
    }
    assert.equal(r.status, 'interrupted', s.id);
    assert.ok(r.completion_tokens === s.tokens || r.completion_tokens === s.tokens + 1,
      `${s.id}: record ${r.completion_tokens}, client received ${s.tokens}`);
    if (r.completion_tokens === s.tokens) ++exact; else ++one_more;
    if (r.completion_tokens === 0) assert.equal(r.prompt_tokens, 0, 'nothing received: nothing billed');
    else assert.ok(r.prompt_tokens > 0);
    received += s.tokens;
  }
  assert.ok(exact + one_more >= 40, `interrupted streams checked: ${exact + one_more}`);
  // Streams killed before any chunk: their records (no id seen) must bill nothing.
  const seen = new Set(streams.map((s) => s.id ?? s.full?.id));
  for (const r of byId.values())
    if (!seen.has(r.request_id)) {
      assert.equal(r.status, 'interrupted');
      assert.ok(r.completion_tokens <= 1 && (r.completion_tokens > 0 || r.prompt_tokens === 0), JSON.stringify(r));
    }
  t.diagnostic(`streams exact ${exact}, one chunk more ${one_more}, finished ${finished}, unseen ${unseen}, tokens received ${received}`);
  // The statement of the period bills exactly the records.
  const from = new Date(t0 - 60000).toISOString(), to = new Date(Date.now() + 60000).toISOString();
  const st = JSON.parse(corral(dsn, 'statement', '--from', from, '--to', to, '--format', 'json'));
  const recs = [...byId.values()];
  assert.equal(st.totals.overall.completion_tokens, recs.reduce((a, r) => a + r.completion_tokens, 0));
  assert.equal(st.totals.overall.requests, recs.length);
  corral(dsn, 'ledger', 'verify');  // throws (exit 1) naming any violation
});
