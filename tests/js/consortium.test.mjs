// A consortium's custom version served by `corral serve` on both ledgers: members-only (a
// non-member's key gets 404 model_not_found on every route and nothing is metered), then opened
// with --public, its revenue net of the licensor's share paid back to the members; the statement
// recomputed here from the JSON records with BigInt (amounts, round half to even, shares,
// largest-remainder parts, balances).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, BIN } from './server.mjs';
import { startPostgres } from './postgres.mjs';

let pg;
before(async () => { pg = await startPostgres(); });
after(async () => { if (pg && !pg.skip) await pg.stop(); });

const dir = mkdtempSync(join(tmpdir(), 'corral-cons-'));
const base = join(dir, 'base.gguf');
execFileSync(BIN, ['synth', '--shape', 'tiny', '--type', 'q8_0', '--seed', '5', '--license', 'llama3.1', base], { stdio: 'ignore' });
const data = join(dir, 'd.jsonl');
writeFileSync(data, [0, 1, 2, 3].map((i) => JSON.stringify({ text: `Consortium text ${i}` })).join('\n') + '\n');
const adapter = join(dir, 'custom.gguf');
execFileSync(BIN, ['finetune', '-m', base, '--data', data, '-o', adapter, '--rank', '2', '--steps', '2', '--no-progress', '-t', '2'], { stdio: 'ignore' });

const rhe = (num, den) => {  // BigInt round half to even
  const q = num / den, r = num % den;
  return 2n * r > den || (2n * r === den && q % 2n === 1n) ? q + 1n : q;
};
const split = (amount, weights) => {
  const tot = weights.reduce((a, b) => a + b, 0n);
  const parts = weights.map((w) => (amount * w) / tot);
  let left = amount - parts.reduce((a, b) => a + b, 0n);
  const order = weights.map((w, i) => [(amount * w) % tot, i]).sort((a, b) => (a[0] === b[0] ? a[1] - b[1] : a[0] > b[0] ? -1 : 1));
  for (const [, i] of order) { if (left <= 0n) break; parts[i] += 1n; left -= 1n; }
  return parts;
};

for (const kind of ['sqlite', 'postgresql'])
test(`${kind}: members-only custom version, then public with its revenue shared; statement recomputed`, async (t) => {
  if (kind === 'postgresql' && (!pg || pg.skip)) return t.skip(pg?.skip ?? 'PostgreSQL not started');
  const dsn = kind === 'sqlite' ? `sqlite:${join(mkdtempSync(join(dir, 'l-')), 'ledger.db')}` : pg.database();
  const corral = (...args) => execFileSync(BIN, [...args, '--ledger', dsn], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const keys = {};
  for (const tn of ['acme', 'acme-eu', 'globex', 'initech', 'outsider']) keys[tn] = JSON.parse(corral('tenant', 'add', tn, '--json')).api_key;
  corral('consortium', 'create', 'llamas', '--compute-price', '0.80');
  corral('consortium', 'member', 'add', 'llamas', 'Acme', '--tenant', 'acme', '--tenant', 'acme-eu', '--share', '45.5');
  corral('consortium', 'member', 'add', 'llamas', 'Globex', '--tenant', 'globex', '--share', '33.33');
  corral('consortium', 'member', 'add', 'llamas', 'Initech', '--tenant', 'initech', '--share', '21.17');
  corral('consortium', 'model', 'add', 'llamas', 'custom-1', adapter, '--base', 'tiny');
  corral('price', 'set', 'custom-1', '--input', '1.37', '--output', '2.91');
  corral('share', 'set', 'llama3.1', '--percent', '12.5');
  const adminKey = join(dir, 'admin.key');
  writeFileSync(adminKey, 'admin-key-for-consortium-tests-0123\n', { mode: 0o600 });
  const srv = await startServer(['-m', `tiny=${base}`, '--ledger', dsn, '--admin-key-file', adminKey]);
  try {
    const call = (key, path, body) => fetch(srv.url + path, { method: body ? 'POST' : 'GET', headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' }, body: body ? JSON.stringify(body) : undefined });
    const routes = [
      ['/v1/chat/completions', { model: 'custom-1', messages: [{ role: 'user', content: 'hi' }], max_tokens: 3 }],
      ['/v1/completions', { model: 'custom-1', prompt: 'hi', max_tokens: 3 }],
      ['/v1/responses', { model: 'custom-1', input: 'hi', max_output_tokens: 3 }],
      ['/v1/embeddings', { model: 'custom-1', input: 'hi' }],
      ['/tokenize', { model: 'custom-1', prompt: 'hi' }],
      ['/v1/models/custom-1', null],
    ];
    const models = async (key) => (await (await call(key, '/v1/models')).json()).data.map((m) => m.id);
    // Members only: the outsider sees a model that does not exist.
    for (const [path, body] of routes) {
      const r = await call(keys.outsider, path, body);
      assert.equal(r.status, 404, `${path} for a non-member`);
      assert.equal((await r.json()).error.code, 'model_not_found');
      assert.equal((await call(keys['acme-eu'], path, body)).status, 200, `${path} for a member`);
    }
    assert.ok(!(await models(keys.outsider)).includes('custom-1'));
    assert.ok((await models(keys.globex)).includes('custom-1'));
    const usage = () => corral('usage', '--json').split('\n').filter(Boolean).map((l) => JSON.parse(l));
    assert.equal(usage().filter((r) => r.tenant === 'outsider').length, 0, 'nothing metered for the refusals');
    // Made public: everyone may use it at its price, and its revenue goes back to the members.
    await new Promise((r) => setTimeout(r, 50));
    corral('consortium', 'model', 'add', 'llamas', 'custom-1', adapter, '--base', 'tiny', '--public');
    await new Promise((r) => setTimeout(r, 1100));
    for (const tn of ['outsider', 'globex', 'outsider'])
      assert.equal((await call(keys[tn], '/v1/completions', { model: 'custom-1', prompt: 'hello there', max_tokens: 5, ignore_eos: true })).status, 200);
    assert.ok((await models(keys.outsider)).includes('custom-1'));
    corral('consortium', 'contribute', 'llamas', 'Globex', '--amount', '12.345678');
    const st = JSON.parse(corral('consortium', 'statement', 'llamas', '--from', '2000-01-01T00:00:00Z', '--to', '2100-01-01T00:00:00Z', '--format', 'json'));
    // Recompute: the public period's records of custom-1, one line per tenant (one price and
    // share version here), amount and licensor share rounded half to even, net split by shares.
    const show = JSON.parse(corral('consortium', 'show', 'llamas', '--json'));
    const events = show;  // shares are constant here
    const weights = [4550n, 3333n, 2117n];
    const pub = usage().filter((r) => r.model === 'custom-1' && ['completed', 'cancelled', 'interrupted'].includes(r.status));
    const byTenant = new Map();
    const sinceMs = Date.parse(pub.find((r) => r.tenant === 'outsider').started_at) - 1;  // the first public request
    for (const r of pub) {
      if (Date.parse(r.started_at) < sinceMs) continue;
      const a = byTenant.get(r.tenant) ?? { unc: 0n, cac: 0n, out: 0n };
      a.unc += BigInt(r.prompt_tokens - r.cached_tokens); a.cac += BigInt(r.cached_tokens); a.out += BigInt(r.completion_tokens);
      byTenant.set(r.tenant, a);
    }
    let net = 0n;
    for (const a of byTenant.values()) {
      const amount = rhe(a.unc * 1370000n + a.cac * 1370000n + a.out * 2910000n, 1000000n);
      net += amount - rhe(amount * 1250n, 10000n);
    }
    const parts = split(net, weights);
    assert.ok(net > 0n);
    const revenue = st.revenue.reduce((s, x) => s + BigInt(x.net), 0n);
    assert.equal(revenue, net, 'the revenue net of the licensor share');
    const members = Object.fromEntries(st.members.map((m) => [m.member, m]));
    ['Acme', 'Globex', 'Initech'].forEach((o, i) => {
      const m = members[o];
      assert.equal(BigInt(m.revenue), parts[i], `${o} revenue`);
      assert.equal(BigInt(m.balance), BigInt(m.money) + BigInt(m.compute) - BigInt(m.costs) + BigInt(m.revenue));
    });
    assert.equal(BigInt(members.Globex.money), 12345678n);
    assert.equal(st.members.map((m) => m.share_bp).join(), '4550,3333,2117');
    assert.match(st.digest, /^[0-9a-f]{64}$/);
    assert.equal(events.models[0].public, true);
    // The admin API shows the same consortium and the same statement (the same digest).
    const admin = (path) => fetch(srv.url + path, { headers: { Authorization: 'Bearer admin-key-for-consortium-tests-0123' } });
    const list = await (await admin('/admin/v1/consortia')).json();
    assert.equal(list.data[0].consortium, 'llamas');
    assert.equal(list.data[0].members.length, 3);
    const ast = await (await admin('/admin/v1/consortia/llamas/statement?from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z')).json();
    assert.equal(ast.digest, st.digest);
    assert.equal((await admin('/admin/v1/consortia/nope/statement?from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z')).status, 404);
    assert.equal((await call(keys.acme, '/admin/v1/consortia')).status === 200, false, 'tenant keys are refused');
  } finally {
    await srv.stop();
  }
});
