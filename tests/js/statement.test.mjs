// Prices, licensor shares, statements and the license gate, end to end on SQLite and PostgreSQL:
// random traffic across tenants and models with a price change in the middle, the statement
// recomputed here from `corral usage --json` with BigInt arithmetic (never the server's numbers),
// the license gate for each family and country case, CSV and PDF (pdftotext), and closing a
// period: signature, byte-identical regeneration, a late record carried as an adjustment.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, BIN } from './server.mjs';
import { startPostgres } from './postgres.mjs';

let pg;
before(async () => { pg = await startPostgres(); });
after(async () => { if (pg && !pg.skip) await pg.stop(); });

const dir = mkdtempSync(join(tmpdir(), 'corral-stmt-'));
const M31 = join(dir, 'm31.gguf'), M4 = join(dir, 'm4.gguf');
execFileSync(BIN, ['synth', '--shape', 'tiny', '--type', 'q8_0', '--seed', '3', '--license', 'llama3.1', M31], { stdio: 'ignore' });
execFileSync(BIN, ['synth', '--shape', 'tiny-llama4', '--type', 'q8_0', '--seed', '4', '--license', 'llama4', M4], { stdio: 'ignore' });

const run = (dsn, ...args) => execFileSync(BIN, [...args, '--ledger', dsn], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const runFail = (dsn, ...args) => spawnSync(BIN, [...args, '--ledger', dsn], { encoding: 'utf8' });
const chat = (url, key, model, content, extra = {}) => fetch(url + '/v1/chat/completions', {
  method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${key}` },
  body: JSON.stringify({ model, messages: [{ role: 'user', content }], max_tokens: 4, temperature: 0, ...extra }),
});
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Round half to even of num / den, both BigInt, num >= 0.
function rhe(num, den) {
  const q = num / den, r = num % den;
  return 2n * r > den || (2n * r === den && q % 2n === 1n) ? q + 1n : q;
}

// The statement of [from, to) computed from the ledger's own exports, independently of Corral's.
function expectedStatement(records, prices, shares, from, to) {
  const lines = new Map();
  for (const r of records) {
    const t = Date.parse(r.started_at);
    if (t < from || t >= to || !['completed', 'cancelled', 'interrupted'].includes(r.status)) continue;
    const p = prices.find((x) => x.version === r.price_version);
    const sh = shares.filter((s) => s.family === r.family && Date.parse(s.from) <= t)
      .sort((a, b) => Date.parse(a.from) - Date.parse(b.from) || a.version - b.version).pop();
    const key = `${r.tenant}|${r.model}|${r.price_version}`;
    if (!lines.has(key)) lines.set(key, { tenant: r.tenant, model: r.model, price_version: r.price_version, family: r.family, bp: sh ? BigInt(sh.basis_points) : 0n, requests: 0n, uncached: 0n, cached: 0n, completion: 0n, priced: 0n });
    const l = lines.get(key);
    const uncached = BigInt(r.prompt_tokens - r.cached_tokens), cached = BigInt(r.cached_tokens), completion = BigInt(r.completion_tokens);
    l.requests += 1n; l.uncached += uncached; l.cached += cached; l.completion += completion;
    if (p) l.priced += uncached * BigInt(p.input_micros) + cached * BigInt(p.cached_micros) + completion * BigInt(p.output_micros);
  }
  for (const l of lines.values()) {
    l.amount = rhe(l.priced, 1000000n);
    l.share = rhe(l.amount * l.bp, 10000n);
    l.net = l.amount - l.share;
  }
  return lines;
}

// Sorted keys, no whitespace; the top level's "digest" and "signature" left out.
function canonical(v, top = true) {
  if (Array.isArray(v)) return '[' + v.map((e) => canonical(e, false)).join(',') + ']';
  if (v && typeof v === 'object')
    return '{' + Object.keys(v).filter((k) => !top || (k !== 'digest' && k !== 'signature')).sort()
      .map((k) => JSON.stringify(k) + ':' + canonical(v[k], false)).join(',') + '}';
  return JSON.stringify(v);
}
const sha256 = (s) => createHash('sha256').update(s).digest('hex');
const micros = (n) => `${Math.floor(n / 1e6)}.${String(n % 1e6).padStart(6, '0')}`;

for (const kind of ['sqlite', 'postgresql'])
test(`${kind}: license gate, statement recomputed from usage, CSV/PDF, close, sign, adjust`, async (t) => {
  if (kind === 'postgresql' && (!pg || pg.skip)) return t.skip(pg?.skip ?? 'PostgreSQL not started');
  const d = mkdtempSync(join(dir, kind + '-'));
  const dsn = kind === 'sqlite' ? `sqlite:${join(d, 'ledger.db')}` : pg.database();
  const keyOf = (name, ...a) => JSON.parse(run(dsn, 'tenant', 'add', name, '--json', ...a)).api_key;
  const small = keyOf('small', '--mau', '1000', '--country', 'US');
  const other = keyOf('other', '--mau', '700000000', '--country', 'FR');  // exactly at the limit: allowed
  const big = keyOf('big', '--mau', '800000000', '--country', 'US');
  const eu = keyOf('eu', '--mau', '10', '--country', 'DE');
  const T0 = Date.now() - 1000;
  run(dsn, 'price', 'set', 'Llama-3.1-t', '--input', '0.15', '--output', '0.6', '--cached', '0.075');
  run(dsn, 'price', 'set', 'Llama-4-t', '--input', '0.000001', '--output', '0.000002');
  run(dsn, 'share', 'set', 'llama3.1', '--percent', '12.5');
  run(dsn, 'share', 'set', 'llama4', '--percent', '7.25');
  assert.match(runFail(dsn, 'price', 'set', 'x', '--input', '0.1234567', '--output', '1').stderr, /more than 6 decimal places/);
  assert.match(runFail(dsn, 'price', 'set', 'x', '--input', '-1', '--output', '1').stderr, /non-negative decimal/);
  assert.match(runFail(dsn, 'share', 'set', 'llama9', '--percent', '1').stderr, /unknown license family/);
  assert.match(runFail(dsn, 'share', 'set', 'llama2', '--percent', '1.234').stderr, /more than 2 decimal places/);

  const srv = await startServer(['-m', `Llama-3.1-t=${M31}`, '-m', `Llama-4-t=${M4}`, '--ledger', dsn, '-t', '2', '--parallel', '4']);
  try {
    // /v1/models: family, licence name and link, attribution.
    const models = await (await fetch(srv.url + '/v1/models', { headers: { Authorization: `Bearer ${small}` } })).json();
    const byId = Object.fromEntries(models.data.map((m) => [m.id, m]));
    assert.equal(byId['Llama-3.1-t'].family, 'llama3.1');
    assert.equal(byId['Llama-3.1-t'].license_name, 'Llama 3.1 Community License Agreement');
    assert.match(byId['Llama-3.1-t'].license_link, /llama3_1/);
    assert.equal(byId['Llama-3.1-t'].attribution, 'Built with Llama');
    assert.equal(byId['Llama-4-t'].family, 'llama4');
    assert.equal(byId['Llama-4-t'].multimodal, true);

    // The gate: below/at/above 700M, with and without a grant, EU and non-EU, llama3.1 and llama4.
    const gate = async (key, model) => {
      const r = await chat(srv.url, key, model, 'hello');
      const body = await r.json();
      assert.equal(r.headers.get('x-model-license'), model === 'Llama-4-t' ? 'llama4' : 'llama3.1');
      return r.status === 200 ? 'ok' : `${r.status} ${body.error.code}`;
    };
    assert.equal(await gate(small, 'Llama-3.1-t'), 'ok');
    assert.equal(await gate(small, 'Llama-4-t'), 'ok');
    assert.equal(await gate(other, 'Llama-3.1-t'), 'ok');
    assert.equal(await gate(other, 'Llama-4-t'), '403 license_restricted');  // FR is in the EU
    assert.equal(await gate(big, 'Llama-3.1-t'), '403 license_required');
    assert.equal(await gate(big, 'Llama-4-t'), '403 license_required');
    assert.equal(await gate(eu, 'Llama-3.1-t'), 'ok');
    assert.equal(await gate(eu, 'Llama-4-t'), '403 license_restricted');
    run(dsn, 'license', 'grant', 'big', 'llama3.1', '--ref', 'META-2026-001');
    const grantedAt = Date.now();
    let after = '';
    while (Date.now() - grantedAt < 2000 && (after = await gate(big, 'Llama-3.1-t')) !== 'ok') await sleep(100);
    assert.equal(after, 'ok', 'a grant takes effect within 2 seconds');
    assert.equal(await gate(big, 'Llama-4-t'), '403 license_required', 'a grant covers its family only');
    const grants = JSON.parse(run(dsn, 'license', 'list', '--json'));
    assert.deepEqual(grants.map((g) => [g.tenant, g.family, g.ref]), [['big', 'llama3.1', 'META-2026-001']]);

    // Random traffic, a price change in the middle, repeated prompts for cached tokens.
    let seed = 7;
    const rnd = (n) => { seed = (seed * 48271) % 2147483647; return Math.floor((seed / 2147483647) * n); };
    const who = [[small, ['Llama-3.1-t', 'Llama-4-t']], [eu, ['Llama-3.1-t']], [big, ['Llama-3.1-t']], [other, ['Llama-3.1-t']]];
    const long = 'The quick brown fox jumps over the lazy dog. '.repeat(8);
    for (let i = 0; i < 24; ++i) {
      if (i === 12) run(dsn, 'price', 'set', 'Llama-3.1-t', '--input', '0.2', '--output', '0.9');
      const [key, ms] = who[rnd(who.length)];
      const r = await chat(srv.url, key, ms[rnd(ms.length)], rnd(2) ? long : `question ${i}`, { max_tokens: 1 + rnd(9) });
      assert.equal(r.status, 200);
      await r.json();
    }
    const T1 = Date.now() + 1000;
    const records = run(dsn, 'usage', '--json').split('\n').filter(Boolean).map((l) => JSON.parse(l));
    assert.ok(records.some((r) => r.cached_tokens > 0), 'some prompts reused cached blocks: ' + JSON.stringify(records.map((r) => [r.model, r.prompt_tokens, r.cached_tokens])));
    assert.equal(new Set(records.filter((r) => r.model === 'Llama-3.1-t').map((r) => r.price_version)).size, 2, 'two price versions in the period');
    const prices = JSON.parse(run(dsn, 'price', 'list', '--json'));
    const shares = JSON.parse(run(dsn, 'share', 'list', '--json'));
    const from = new Date(T0).toISOString(), to = new Date(T1).toISOString();
    const st = JSON.parse(run(dsn, 'statement', '--from', from, '--to', to, '--format', 'json'));

    const want = expectedStatement(records, prices, shares, T0, T1);
    assert.equal(st.lines.length, want.size);
    const sum = { requests: 0n, uncached: 0n, cached: 0n, completion: 0n, amount: 0n, share: 0n, net: 0n };
    for (const line of st.lines) {
      const w = want.get(`${line.tenant}|${line.model}|${line.price_version}`);
      assert.ok(w, `unexpected line ${line.tenant}/${line.model}/${line.price_version}`);
      assert.deepEqual(
        [line.family, line.requests, line.uncached_prompt_tokens, line.cached_prompt_tokens, line.completion_tokens, line.amount_micros, line.share_micros, line.net_micros],
        [w.family, Number(w.requests), Number(w.uncached), Number(w.cached), Number(w.completion), Number(w.amount), Number(w.share), Number(w.net)],
        `line ${line.tenant}/${line.model}/${line.price_version}`);
      for (const k of Object.keys(sum)) sum[k] += w[k];
    }
    const o = st.totals.overall;
    assert.deepEqual([o.requests, o.uncached_prompt_tokens, o.cached_prompt_tokens, o.completion_tokens, o.amount_micros, o.share_micros, o.net_micros],
      [sum.requests, sum.uncached, sum.cached, sum.completion, sum.amount, sum.share, sum.net].map(Number));
    for (const [name, tt] of Object.entries(st.totals.by_tenant)) {
      const mine = [...want.values()].filter((l) => l.tenant === name);
      assert.equal(tt.amount_micros, Number(mine.reduce((a, l) => a + l.amount, 0n)), `tenant ${name}`);
      assert.equal(tt.requests, Number(mine.reduce((a, l) => a + l.requests, 0n)));
    }
    for (const [fam, tt] of Object.entries(st.totals.by_family)) {
      const mine = [...want.values()].filter((l) => l.family === fam);
      assert.equal(tt.share_micros, Number(mine.reduce((a, l) => a + l.share, 0n)), `family ${fam}`);
    }
    assert.equal(st.currency, 'USD');
    assert.equal(st.digest, sha256(canonical(st)), 'digest = SHA-256 of the canonical JSON');

    // CSV carries the same totals; the PDF the totals and the digest.
    const csv = run(dsn, 'statement', '--from', from, '--to', to, '--format', 'csv').split('\n');
    const overall = csv.find((l) => l.startsWith('overall_total,')).split(',');
    assert.deepEqual(overall.slice(7, 14).map(Number), [o.requests, o.uncached_prompt_tokens, o.cached_prompt_tokens, o.completion_tokens, o.amount_micros, o.share_micros, o.net_micros]);
    assert.equal(overall[14], 'USD');
    const pdf = join(d, 'st.pdf');
    run(dsn, 'statement', '--from', from, '--to', to, '--format', 'pdf', '-o', pdf, '--host', 'Example Host');
    const text = execFileSync('pdftotext', ['-layout', pdf, '-'], { encoding: 'utf8' });
    assert.ok(text.includes(`Amount: ${micros(o.amount_micros)} USD`), text);
    assert.ok(text.includes(`Licensor share: ${micros(o.share_micros)} USD`));
    assert.ok(text.includes(`Host net: ${micros(o.net_micros)} USD`));
    assert.ok(text.includes('Host: Example Host'));
    const pdfDigest = JSON.parse(run(dsn, 'statement', '--from', from, '--to', to, '--host', 'Example Host')).digest;
    assert.ok(text.includes(pdfDigest), 'the PDF shows the digest');
    assert.ok(text.includes('Family llama3.1') && text.includes('Family llama4'));

    // The licensor's view: per family across tenants, the grant and each refusal.
    const lic = JSON.parse(run(dsn, 'statement', '--from', from, '--to', to, '--licensor'));
    assert.equal(lic.families['llama3.1'].amount_micros, st.totals.by_family['llama3.1'].amount_micros);
    assert.equal(lic.refusals['llama3.1'].license_required, 1);
    assert.equal(lic.refusals.llama4.license_required, 2);
    assert.equal(lic.refusals.llama4.license_restricted, 2);
    assert.equal(lic.grants, 1);
    assert.equal(lic.digest, sha256(canonical(lic)));

    // Closing: a streamed answer is still open when the period closes; it arrives late and is
    // carried into the next period as an adjustment, never changing the closed one.
    const keyFile = join(d, 'host.key');
    const pub = execFileSync(BIN, ['statement', 'keygen', '-o', keyFile], { encoding: 'utf8' }).trim();
    assert.match(pub, /^[0-9a-f]{64}$/);
    assert.equal(spawnSync(BIN, ['statement', 'keygen', '-o', keyFile]).status, 1, 'a key is never overwritten');
    const ctl = new AbortController();
    const stream = await fetch(srv.url + '/v1/chat/completions', {
      method: 'POST', signal: ctl.signal, headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${small}` },
      body: JSON.stringify({ model: 'Llama-3.1-t', messages: [{ role: 'user', content: 'a long story' }], max_tokens: 3000, stream: true, ignore_eos: true }),
    });
    const reader = stream.body.getReader();
    await reader.read();
    const closeTo = new Date(Date.now() + 50).toISOString();
    await sleep(100);
    const closed = run(dsn, 'statement', 'close', '--from', from, '--to', closeTo, '--key', keyFile, '--host', 'Example Host');
    ctl.abort();
    await reader.read().catch(() => {});
    let late;
    for (let i = 0; i < 50 && !(late = run(dsn, 'usage', '--json').split('\n').filter(Boolean).map((l) => JSON.parse(l)).find((r) => r.status === 'cancelled')); ++i) await sleep(100);
    assert.ok(late && late.completion_tokens > 0, 'the streamed request was settled as cancelled');
    assert.equal(late.billed_from, null);
    const again = run(dsn, 'statement', '--from', from, '--to', closeTo, '--host', 'Other Host');
    assert.equal(again, closed, 'a closed period regenerates byte for byte');
    const cj = JSON.parse(closed);
    assert.equal(cj.digest, sha256(canonical(cj)));
    assert.equal(cj.signature.public_key, pub);
    assert.ok(!cj.lines.some((l) => l.adjustment));
    // One tenant's part of the closed period: the records that period billed, those lines only.
    const part = JSON.parse(run(dsn, 'statement', '--from', from, '--to', closeTo, '--tenant', 'small', '--host', 'Example Host'));
    assert.deepEqual(part.lines, cj.lines.filter((l) => l.tenant === 'small'));
    assert.deepEqual(part.totals.overall, cj.totals.by_tenant.small);
    const file = join(d, 'closed.json');
    writeFileSync(file, closed);
    assert.match(execFileSync(BIN, ['statement', 'verify', file, '--public-key', pub], { encoding: 'utf8' }), /ok/);
    assert.match(execFileSync(BIN, ['statement', 'verify', file, '--public-key', keyFile.replace(/\.key$/, '.pub')], { encoding: 'utf8' }), /ok/);
    const tampered = JSON.parse(closed);
    tampered.totals.overall.share_micros += 1;
    writeFileSync(join(d, 'tampered.json'), JSON.stringify(tampered));
    assert.match(spawnSync(BIN, ['statement', 'verify', join(d, 'tampered.json'), '--public-key', pub], { encoding: 'utf8' }).stderr, /digest mismatch/);
    const other2 = execFileSync(BIN, ['statement', 'keygen', '-o', join(d, 'other.key')], { encoding: 'utf8' }).trim();
    assert.match(spawnSync(BIN, ['statement', 'verify', file, '--public-key', other2], { encoding: 'utf8' }).stderr, /does not verify/);
    assert.match(runFail(dsn, 'statement', 'close', '--from', from, '--to', closeTo, '--key', keyFile).stderr, /closed already/);
    assert.match(runFail(dsn, 'statement', 'close', '--from', new Date(T0 + 1).toISOString(), '--to', closeTo, '--key', keyFile).stderr, /overlaps/);

    // The next period carries the late record as an adjustment line.
    await sleep(50);
    const nextTo = new Date(Date.now()).toISOString();
    const next = JSON.parse(run(dsn, 'statement', '--from', closeTo, '--to', nextTo));
    const adj = next.lines.filter((l) => l.adjustment);
    assert.equal(adj.length, 1);
    assert.equal(adj[0].requests, 1);
    assert.equal(adj[0].completion_tokens, late.completion_tokens);
    const p2 = prices.find((p) => p.version === late.price_version);
    assert.equal(adj[0].amount_micros, Number(rhe(BigInt(late.prompt_tokens - late.cached_tokens) * BigInt(p2.input_micros) + BigInt(late.cached_tokens) * BigInt(p2.cached_micros) + BigInt(late.completion_tokens) * BigInt(p2.output_micros), 1000000n)));
    run(dsn, 'statement', 'close', '--from', closeTo, '--to', nextTo, '--key', keyFile);
    const billed = run(dsn, 'usage', '--json').split('\n').filter(Boolean).map((l) => JSON.parse(l)).find((r) => r.request_id === late.request_id);
    assert.equal(billed.billed_from, new Date(Date.parse(closeTo)).toISOString());
    assert.equal(run(dsn, 'statement', '--from', from, '--to', closeTo), closed, 'the first closed period never changes');
    // A price version starting in the past re-prices only unbilled records: the billed keep theirs.
    const before4 = run(dsn, 'usage', '--json').split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((r) => r.model === 'Llama-4-t');
    run(dsn, 'price', 'set', 'Llama-4-t', '--input', '9', '--output', '9', '--from', '2020-01-01');
    const after4 = run(dsn, 'usage', '--json').split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((r) => r.model === 'Llama-4-t');
    assert.ok(before4.length > 0 && before4.every((r) => r.billed_from !== null));
    assert.deepEqual(after4.map((r) => r.price_version), before4.map((r) => r.price_version));
    // A period that has not ended can be closed too (later requests become adjustments), and
    // without --key the default key is made on first use.
    const fut = spawnSync(BIN, ['statement', 'close', '--from', nextTo, '--to', '2099-01-01', '--ledger', dsn], { cwd: d, encoding: 'utf8' });
    assert.equal(fut.status, 0, fut.stderr);
    assert.match(fut.stderr, /has not ended/);
    assert.match(fut.stderr, /making one/);
    assert.match(execFileSync(BIN, ['statement', 'verify', '-', '--public-key', join(d, 'corral-statement.pub')], { input: fut.stdout, encoding: 'utf8' }), /ok/);
    assert.match(run(dsn, 'ledger', 'verify'), /ok/);
  } finally {
    await srv.stop();
  }
});
