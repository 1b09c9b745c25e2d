// Hosting against a real server and a SQLite ledger: hostile keys and names (zero unauthorised
// successes, nothing metered for them), the admin API, quotas under 32 concurrent requests, and
// kill -9 under 16 streaming clients, five times, with the ledger checked after each restart.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, tinyModel, BIN } from './server.mjs';
import { startPostgres } from './postgres.mjs';

const ADMIN = 'admin-key-for-tests-0123456789';

let pg;
before(async () => { pg = await startPostgres(); });
after(async () => { if (pg && !pg.skip) await pg.stop(); });

// A fresh ledger of the given kind, and an admin key file.
function makeLedger(kind) {
  const dir = mkdtempSync(join(tmpdir(), 'corral-ledger-'));
  writeFileSync(join(dir, 'admin.key'), ADMIN + '\n', { mode: 0o600 });
  const dsn = kind === 'sqlite' ? `sqlite:${join(dir, 'ledger.db')}` : pg.database();
  return { dir, dsn, admin: join(dir, 'admin.key') };
}
const kinds = ['sqlite', 'postgresql'];
const skipFor = (kind) => (kind === 'postgresql' && (!pg || pg.skip) ? pg?.skip ?? 'PostgreSQL not started' : false);

const corral = (dsn, ...args) => execFileSync(BIN, [...args, '--ledger', dsn], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const corralFail = (dsn, ...args) => spawnSync(BIN, [...args, '--ledger', dsn], { encoding: 'utf8' });
const usageRecords = (dsn, ...args) => corral(dsn, 'usage', '--json', ...args).split('\n').filter(Boolean).map((l) => JSON.parse(l));
const call = (url, key, body, path = '/v1/completions', headers = {}) =>
  fetch(url + path, { method: 'POST', headers: { 'Content-Type': 'application/json', ...(key !== null ? { Authorization: `Bearer ${key}` } : {}), ...headers }, body: JSON.stringify(body) });

for (const kind of kinds)
test(`${kind}: hostile keys, names and routes: zero unauthorised successes, nothing metered`, async (t) => {
  if (skipFor(kind)) return t.skip(skipFor(kind));
  const L = makeLedger(kind);
  const a = JSON.parse(corral(L.dsn, 'tenant', 'add', 'alpha', '--json'));
  const b = JSON.parse(corral(L.dsn, 'tenant', 'add', 'beta', '--json'));
  assert.match(a.api_key, /^sk-corral-[0-9A-Za-z]{43}$/);
  const revoked = JSON.parse(corral(L.dsn, 'key', 'create', 'alpha', '--json'));
  corral(L.dsn, 'key', 'revoke', revoked.key_id);
  const expired = JSON.parse(corral(L.dsn, 'key', 'create', 'alpha', '--expires', '2020-01-01T00:00:00Z', '--json'));
  const limited = JSON.parse(corral(L.dsn, 'key', 'create', 'alpha', '--models', 'other-model', '--json'));
  const sus = JSON.parse(corral(L.dsn, 'tenant', 'add', 'gamma', '--json'));
  corral(L.dsn, 'tenant', 'set', 'gamma', '--suspended', 'true');
  // Hostile names never reach the ledger.
  for (const name of ["x'; DROP TABLE tenants; --", 'tab\tname', 'new\nline', '../etc', '', 'x'.repeat(65), 'ünïcode'])
    assert.equal(corralFail(L.dsn, 'tenant', 'add', name).status, 1, JSON.stringify(name));
  const srv = await startServer(['-m', `tiny=${tinyModel('q4_0')}`, '--ledger', L.dsn, '--admin-key-file', L.admin]);
  try {
    const body = { model: 'tiny', prompt: 'hello', max_tokens: 3 };
    const refused = [
      [null, {}], ['', {}], ['sk-corral-' + 'A'.repeat(43), {}], [a.api_key + 'x', {}], [a.api_key.slice(0, -1), {}],
      [revoked.api_key, {}], [expired.api_key, {}], [sus.api_key, {}], [`${a.api_key} ${a.api_key}`, {}],
    ];
    for (const [key, headers] of refused) {
      const r = await call(srv.url, key, body, '/v1/completions', headers);
      assert.ok(r.status === 401 || r.status === 403, `key ${JSON.stringify(key)}: ${r.status}`);
      const e = await r.json();
      for (const k of ['message', 'type', 'param', 'code']) assert.ok(k in e.error);
    }
    // Keys in odd places are not keys.
    for (const headers of [{ 'X-Api-Key': a.api_key }, { Authorization: `Basic ${a.api_key}` }, { Cookie: `key=${a.api_key}` }]) {
      const r = await fetch(srv.url + '/v1/completions?api_key=' + a.api_key, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: JSON.stringify(body) });
      assert.equal(r.status, 401);
    }
    assert.equal((await call(srv.url, limited.api_key, body)).status, 403, 'key limited to other models');
    assert.equal((await call(srv.url, a.api_key, { ...body, model: "tiny' OR '1'='1" })).status, 404);
    // Admin routes with tenant keys, and without a key.
    for (const key of [a.api_key, b.api_key, null]) {
      const r = await fetch(srv.url + '/admin/v1/tenants', { headers: key ? { Authorization: `Bearer ${key}` } : {} });
      assert.ok(r.status === 401 || r.status === 403, `admin with ${key}: ${r.status}`);
    }
    assert.equal(usageRecords(L.dsn).length, 0, 'nothing metered for refused requests');
    // The real ones work and are metered per tenant.
    const ra = await (await call(srv.url, a.api_key, body)).json();
    const rb = await (await call(srv.url, b.api_key, body)).json();
    assert.ok(ra.usage && rb.usage);
    const ua = await (await fetch(srv.url + '/v1/usage', { headers: { Authorization: `Bearer ${a.api_key}` } })).json();
    assert.equal(ua.records.length, 1);
    assert.equal(ua.records[0].request_id, ra.id);
    assert.equal(ua.records[0].tenant, 'alpha');
    assert.equal(ua.totals.completion_tokens, ra.usage.completion_tokens);
    for (const k of ['request_id', 'tenant', 'key_id', 'model', 'prompt_tokens', 'cached_tokens', 'completion_tokens', 'started_at', 'ended_at', 'finish_reason', 'status', 'price_version'])
      assert.ok(k in ua.records[0], k);
    // Revocation reaches the running server at once.
    const k2 = JSON.parse(corral(L.dsn, 'key', 'create', 'beta', '--json'));
    assert.equal((await call(srv.url, k2.api_key, body)).status, 200);
    corral(L.dsn, 'key', 'revoke', k2.key_id);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal((await call(srv.url, k2.api_key, body)).status, 401);
    // Admin API.
    const admin = (path, init = {}) => fetch(srv.url + path, { ...init, headers: { Authorization: `Bearer ${ADMIN}`, 'Content-Type': 'application/json' } });
    const list = await (await admin('/admin/v1/tenants')).json();
    assert.deepEqual(list.map((t) => t.name), ['alpha', 'beta', 'gamma']);
    const created = await admin('/admin/v1/tenants', { method: 'POST', body: JSON.stringify({ name: 'delta', mau: 5, country: 'fr' }) });
    assert.equal(created.status, 201);
    const d = await created.json();
    for (const name of ["bad'name", 'nul\u0000byte', 'ctl\u001b[31m', 'a/b'])
      assert.equal((await admin('/admin/v1/tenants', { method: 'POST', body: JSON.stringify({ name }) })).status, 400, JSON.stringify(name));
    const patched = await (await admin('/admin/v1/tenants/delta', { method: 'PATCH', body: JSON.stringify({ rpm: 7, suspended: true }) })).json();
    assert.equal(patched.rpm, 7);
    assert.equal(patched.suspended, true);
    assert.equal((await call(srv.url, d.api_key, body)).status, 403, 'suspended through the admin API');
    await admin('/admin/v1/tenants/delta', { method: 'PATCH', body: JSON.stringify({ suspended: false }) });
    assert.equal((await call(srv.url, d.api_key, body)).status, 200, 'resumed');
    const nk = await (await admin('/admin/v1/tenants/delta/keys', { method: 'POST', body: '{}' })).json();
    assert.equal((await admin('/admin/v1/keys/' + nk.key_id, { method: 'DELETE' })).status, 200);
    assert.equal((await call(srv.url, nk.api_key, body)).status, 401);
    const au = await (await admin('/admin/v1/usage?tenant=alpha')).json();
    assert.equal(au.records.length, 1);
    assert.equal((await admin('/admin/v1/tenants/nobody')).status, 404);
  } finally {
    assert.equal((await srv.stop()).code, 0);
  }
  corral(L.dsn, 'ledger', 'verify');
});

for (const kind of kinds)
for (const servers of kind === 'postgresql' ? [1, 2] : [1])
test(`${kind}: 32 concurrent requests on ${servers} server(s) against a small monthly budget never bill past it`, async (tt) => {
  if (skipFor(kind)) return tt.skip(skipFor(kind));
  const L = makeLedger(kind);
  const t = JSON.parse(corral(L.dsn, 'tenant', 'add', 'small', '--json'));
  const srvs = [];
  for (let i = 0; i < servers; ++i) srvs.push(await startServer(['-m', `tiny=${tinyModel('q4_0')}`, '--ledger', L.dsn]));
  const srv = srvs[0];
  try {
    // Each request: prompt of a few tokens + 20 out, so a reservation is about 25 tokens.
    const probe = await (await call(srv.url, t.api_key, { prompt: 'count with me', max_tokens: 20, ignore_eos: true })).json();
    const per = probe.usage.prompt_tokens + 20;
    const used0 = probe.usage.total_tokens;
    const budget = used0 + per * 3 + Math.floor(per / 2);
    corral(L.dsn, 'tenant', 'set', 'small', '--monthly-tokens', String(budget));
    const rs = await Promise.all([...Array(32).keys()].map((i) => call(srvs[i % servers].url, t.api_key, { prompt: 'count with me', max_tokens: 20, ignore_eos: true })));
    const ok = rs.filter((r) => r.status === 200).length;
    const refused = rs.filter((r) => r.status === 429);
    assert.equal(ok + refused.length, 32);
    assert.equal(ok, 3, `admitted ${ok}`);
    for (const r of refused) {
      assert.equal((await r.json()).error.code, 'insufficient_quota');
      assert.ok(r.headers.get('retry-after'));
    }
    const billed = usageRecords(L.dsn).filter((r) => r.status !== 'error').reduce((s, r) => s + r.prompt_tokens + r.completion_tokens, 0);
    assert.ok(billed <= budget, `billed ${billed} <= budget ${budget}`);
    assert.equal(billed, used0 + 3 * per);
    const list = JSON.parse(corral(L.dsn, 'tenant', 'list', '--json'));
    assert.equal(list[0].prompt_tokens + list[0].completion_tokens, billed);
  } finally {
    for (const x of srvs) assert.equal((await x.stop()).code, 0);
  }
});

for (const kind of kinds)
test(`${kind}: kill -9 under 16 streaming clients, five times: every answer received in full has exactly one matching record`, async (tt) => {
  if (skipFor(kind)) return tt.skip(skipFor(kind));
  const L = makeLedger(kind);
  const t = JSON.parse(corral(L.dsn, 'tenant', 'add', 'loadco', '--json'));
  const received = new Map();  // request id -> usage of answers received in full
  for (let round = 0; round < 5; ++round) {
    const srv = await startServer(['-m', `tiny=${tinyModel('q4_0')}`, '--ledger', L.dsn, '--instance', 'node-a']);
    const clients = [...Array(16).keys()].map(async (i) => {
      for (let k = 0; ; ++k) {
        let res;
        try {
          res = await call(srv.url, t.api_key, { prompt: `story ${round} ${i} ${k}`, max_tokens: 8 + ((i * 7 + k) % 40), ignore_eos: true, stream: true, stream_options: { include_usage: true } });
          const text = await res.text();
          if (!text.includes('data: [DONE]')) return;
          const ev = text.split('\n\n').filter((e) => e.startsWith('data: {')).map((e) => JSON.parse(e.slice(6)));
          const u = ev.find((e) => e.usage);
          received.set(u.id, u.usage);
        } catch { return; }  // the server died under us
      }
    });
    await new Promise((r) => setTimeout(r, 1500 + round * 300));
    process.kill(srv.proc.pid, 'SIGKILL');
    await srv.exited;
    await Promise.all(clients);
  }
  // A restart under the same instance name closes what the killed runs left open.
  const srv = await startServer(['-m', `tiny=${tinyModel('q4_0')}`, '--ledger', L.dsn, '--instance', 'node-a']);
  assert.equal((await srv.stop()).code, 0);
  const recs = usageRecords(L.dsn);
  const ids = recs.map((r) => r.request_id);
  assert.equal(new Set(ids).size, ids.length, 'no request id twice');
  assert.ok(received.size > 16, `answers received in full: ${received.size}`);
  const byId = new Map(recs.map((r) => [r.request_id, r]));
  for (const [id, u] of received) {
    const r = byId.get(id);
    assert.ok(r, `record for ${id}`);
    assert.equal(r.status, 'completed', id);
    assert.equal(r.prompt_tokens, u.prompt_tokens, id);
    assert.equal(r.completion_tokens, u.completion_tokens, id);
    assert.equal(r.cached_tokens, u.prompt_tokens_details.cached_tokens, id);
  }
  assert.ok(recs.some((r) => r.status === 'interrupted'), 'killed requests are marked interrupted');
  assert.ok(recs.every((r) => r.status !== 'open'));
  corral(L.dsn, 'ledger', 'verify');
});

test('sqlite: open while the ledger has no tenant, keys required from the first tenant on', async () => {
  const L = makeLedger('sqlite');
  const srv = await startServer(['-m', `tiny=${tinyModel('q4_0')}`, '--ledger', L.dsn]);
  try {
    const body = { model: 'tiny', prompt: 'hi', max_tokens: 2 };
    assert.equal((await call(srv.url, null, body)).status, 200, 'open: no tenant yet');
    assert.ok(srv.lines.some((l) => /open to anyone/.test(l)));
    const t = JSON.parse(corral(L.dsn, 'tenant', 'add', 'first', '--json'));
    await new Promise((r) => setTimeout(r, 1300));
    assert.equal((await call(srv.url, null, body)).status, 401, 'a key is needed once a tenant exists');
    assert.equal((await call(srv.url, t.api_key, body)).status, 200);
    assert.equal(usageRecords(L.dsn).length, 1, 'only the tenant request is metered');
  } finally {
    assert.equal((await srv.stop()).code, 0);
  }
});
