// The web pages in Debian's Chromium (playwright-core, never a downloaded browser): the chat
// streams token by token, stops a long answer (the server logs it cancelled), renders hostile
// model output as text, outgrows a 128-token context without a dead end and shows the model's
// attribution; the usage page shows the requests just made; the host page lists the tenant and
// renders the statement; all under the server's CSP. Screenshots go to $CORRAL_SCREENSHOTS.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, BIN } from './server.mjs';

const CHROMIUM = '/usr/bin/chromium';
const SHOTS = process.env.CORRAL_SCREENSHOTS || mkdtempSync(join(tmpdir(), 'corral-shots-'));
const ADMIN = 'admin-key-for-the-pages-test-0123';
const HOST = 'Pages Test Host';

let chromium, browser;
const dir = mkdtempSync(join(tmpdir(), 'corral-pages-'));
const MODEL = join(dir, 'llama31.gguf');
const dsn = `sqlite:${join(dir, 'ledger.db')}`;
const run = (...args) => execFileSync(BIN, [...args, '--ledger', dsn], { encoding: 'utf8' });
let key, small, big;

before(async () => {
  if (!existsSync(CHROMIUM)) return;
  ({ chromium } = await import('playwright-core'));
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  execFileSync(BIN, ['synth', '--shape', 'tiny', '--type', 'q8_0', '--seed', '11', '--license', 'llama3.1', MODEL], { stdio: 'ignore' });
  key = JSON.parse(run('tenant', 'add', 'webco', '--json', '--country', 'US')).api_key;
  run('tenant', 'set', 'webco', '--monthly-tokens', '1000000', '--rpm', '600');
  run('price', 'set', 'Llama-tiny', '--input', '0.5', '--output', '1.5');
  run('price', 'set', 'Llama-tiny-small', '--input', '0.5', '--output', '1.5');
  run('share', 'set', 'llama3.1', '--percent', '10');
  writeFileSync(join(dir, 'admin.key'), ADMIN + '\n', { mode: 0o600 });
  // A consortium with a money contribution and one metered training job, for the host page.
  run('tenant', 'add', 'otherco', '--json');
  run('consortium', 'create', 'herd', '--compute-price', '0.90');
  run('consortium', 'member', 'add', 'herd', 'WebCo', '--tenant', 'webco', '--share', '60');
  run('consortium', 'member', 'add', 'herd', 'OtherCo', '--tenant', 'otherco', '--share', '40');
  run('consortium', 'contribute', 'herd', 'OtherCo', '--amount', '12.345678');
  writeFileSync(join(dir, 'd.jsonl'), [0, 1].map((i) => JSON.stringify({ text: `herd text ${i}` })).join('\n') + '\n');
  execFileSync(BIN, ['finetune', '-m', MODEL, '--data', join(dir, 'd.jsonl'), '-o', join(dir, 'herd.gguf'), '--rank', '2', '--steps', '1', '--no-progress', '-t', '2',
    '--consortium', 'herd', '--member', 'WebCo', '--job', 'job-1', '--ledger', dsn], { stdio: 'ignore' });
  run('consortium', 'model', 'add', 'herd', 'herd-1', join(dir, 'herd.gguf'), '--base', 'Llama-tiny');
  mkdirSync(SHOTS, { recursive: true });
  // One server with the model's own context (long answers to stop), one with 128 positions.
  big = await startServer(['-m', `Llama-tiny=${MODEL}`, '--ledger', dsn, '--admin-key-file', join(dir, 'admin.key'), '--host-name', HOST, '-t', '2']);
  small = await startServer(['-m', `Llama-tiny-small=${MODEL}`, '--ctx-size', '128', '--ledger', dsn, '-t', '2']);
});
after(async () => {
  if (browser) await browser.close();
  if (big) await big.stop();
  if (small) await small.stop();
});

const skip = (t) => (!existsSync(CHROMIUM) ? t.skip('Debian chromium is not installed') : false);

async function openPage(url, cspErrors) {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  page.on('console', (m) => { if (/Content Security Policy|Refused to/.test(m.text())) cspErrors.push(m.text()); });
  page.on('pageerror', (e) => cspErrors.push('page error: ' + e.message));
  await page.goto(url);
  return page;
}

async function enterKey(page, k) {
  await page.fill('#key', k);
  await page.click('#key-form button[type=submit]');
}

test('the pages carry a CSP that forbids inline scripts and other origins', async () => {
  const r = await fetch(big.url + '/');
  const csp = r.headers.get('content-security-policy');
  assert.match(csp, /script-src 'self'/);
  assert.match(csp, /default-src 'none'/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*/);
  const html = await r.text();
  assert.doesNotMatch(html, /<script>(?!<\/script>)|<script>[^<]|style="|onclick=/, 'no inline script, style or handler');
  for (const p of ['/usage', '/admin', '/static/chat.js', '/static/style.css', '/static/markdown-it.min.js'])
    assert.equal((await fetch(big.url + p)).status, 200, p);
  assert.notEqual((await fetch(big.url + '/static/../ledger.db')).status, 200);
  assert.equal((await fetch(big.url + '/static/%2e%2e%2fledger.db')).status, 404);
  assert.equal((await fetch(big.url + '/static/nope.js')).status, 404);
});

test('chat: key, model with attribution, streamed answer, stop, hostile output as text', async (t) => {
  if (skip(t)) return;
  const csp = [];
  const page = await openPage(big.url + '/', csp);
  await enterKey(page, key);
  await page.waitForSelector('#model option[value="Llama-tiny"]', { state: 'attached' });
  assert.match(await page.textContent('#attribution'), /Built with Llama/);
  assert.equal(await page.evaluate(() => localStorage.length + document.cookie.length), 0, 'the key is in session storage only');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('corral-key')), key);

  // Token by token: every render of the answer is recorded by a MutationObserver.
  await page.evaluate(() => {
    window.__renders = [];
    new MutationObserver((recs) => {
      for (const r of recs)
        for (const n of r.addedNodes) if (n.closest?.('.msg.assistant .content') || n.parentElement?.closest?.('.msg.assistant .content')) window.__renders.push(n.textContent.length);
    }).observe(document.querySelector('#messages'), { childList: true, subtree: true });
  });
  await page.fill('#system', 'You are terse.');
  await page.fill('#input', 'Tell me a story.');
  await page.click('#send');
  await page.waitForFunction(() => document.querySelector('#messages .msg.assistant .stats')?.textContent.includes('completion tokens'), null, { timeout: 60000 });
  const renders = await page.evaluate(() => window.__renders);
  assert.ok(new Set(renders).size >= 5, `the answer grew in steps: ${renders.slice(0, 20)}`);
  const stats = await page.textContent('#messages .msg.assistant .stats');
  assert.match(stats, /\d+ prompt .*\+ \d+ completion tokens · first token \d+ ms · [\d.]+ tok\/s/);

  // Stop a long answer: the request is aborted and the server cancels it.
  await page.click('#clear');
  await page.fill('#input', 'Now a very long story, please.');
  await page.click('#send');
  await page.waitForFunction(() => (document.querySelector('#messages .msg.assistant .content')?.textContent.length ?? 0) > 20);
  await page.click('#stop');
  await page.waitForFunction(() => document.querySelector('#messages .msg.assistant .stats')?.textContent.includes('stopped'));
  let logged = false;
  for (let i = 0; i < 50 && !(logged = big.lines.some((l) => /finish=cancelled|cancelled/.test(l) && /chat\/completions/.test(l))); ++i) await new Promise((r) => setTimeout(r, 100));
  assert.ok(logged, 'the server logged the request as cancelled:\n' + big.lines.slice(-5).join('\n'));
  const recs = run('usage', '--json').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  assert.ok(recs.some((r) => r.status === 'cancelled' && r.completion_tokens > 0));
  await page.screenshot({ path: join(SHOTS, 'page-chat.png'), fullPage: true });

  // Hostile model output (served through the page's own request path) renders as text.
  const payload = 'Here: <script>window.__xss = 1</script> and <img src=x onerror="window.__xss = 2"> **bold** `code`';
  await page.route('**/v1/chat/completions', (route) => route.fulfill({
    status: 200, contentType: 'text/event-stream',
    body: [
      { choices: [{ index: 0, delta: { role: 'assistant', content: '' } }] },
      { choices: [{ index: 0, delta: { content: payload.slice(0, 30) } }] },
      { choices: [{ index: 0, delta: { content: payload.slice(30) } }] },
      { choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] },
    ].map((c) => `data: ${JSON.stringify(c)}\n\n`).join('') + 'data: [DONE]\n\n',
  }));
  await page.click('#clear');
  await page.fill('#input', 'say something hostile');
  await page.click('#send');
  await page.waitForFunction(() => document.querySelector('#messages .msg.assistant .stats')?.textContent.length > 0);
  const probe = await page.evaluate(() => {
    const c = document.querySelector('#messages .msg.assistant .content');
    return { text: c.textContent, scripts: c.querySelectorAll('script').length, imgs: c.querySelectorAll('img').length, strong: c.querySelectorAll('strong').length, xss: window.__xss ?? null };
  });
  assert.equal(probe.scripts, 0);
  assert.equal(probe.imgs, 0);
  assert.equal(probe.xss, null);
  assert.ok(probe.text.includes('<script>window.__xss = 1</script>') && probe.text.includes('<img src=x onerror='), probe.text);
  assert.equal(probe.strong, 1, 'Markdown is still rendered');
  await page.unroute('**/v1/chat/completions');
  assert.deepEqual(csp, [], 'nothing was refused by the CSP');
  await page.context().close();
});

test('chat: a conversation outgrows a 128-token context and keeps working', async (t) => {
  if (skip(t)) return;
  const csp = [];
  const page = await openPage(small.url + '/', csp);
  await enterKey(page, key);
  await page.waitForSelector('#model option[value="Llama-tiny-small"]', { state: 'attached' });
  assert.match(await page.textContent('#model-info'), /context 128 tokens/);
  const sent = [];
  page.on('request', (r) => { if (r.url().endsWith('/v1/chat/completions')) sent.push(JSON.parse(r.postData()).messages); });
  for (let i = 0; i < 5; ++i) {
    await page.fill('#input', `Message number ${i}: the quick brown fox jumps over the lazy dog again and again.`);
    await page.click('#send');
    await page.waitForFunction((n) => document.querySelectorAll('#messages .msg.assistant .stats').length === n &&
      [...document.querySelectorAll('#messages .msg.assistant .stats')].every((s) => s.textContent.length > 0), i + 1, { timeout: 60000 });
  }
  assert.match(await page.textContent('#status'), /no longer fit the model's context of 128 tokens/);
  assert.ok(await page.locator('#messages .msg.dropped').count() > 0, 'the oldest turns are shown as left out');
  const last = await page.textContent('#messages .msg.assistant:last-child .stats');
  assert.match(last, /completion tokens/, 'the latest answer still arrived: ' + last);
  assert.equal(sent.length, 5);
  assert.ok(sent.every((ms) => ms[0].role === 'user'), 'whole turns are left out: every request starts with a user message');
  assert.ok(sent[4].length < 9, 'the last request left out old turns');
  // One message longer than the whole context is refused with a note, not a dead end.
  await page.fill('#input', 'word '.repeat(200));
  await page.click('#send');
  await page.waitForSelector('#messages .msg.user.failed');
  assert.match(await page.textContent('#messages .msg.user.failed .stats'), /context is 128/);
  await page.fill('#input', 'short again');
  await page.click('#send');
  await page.waitForFunction((n) => document.querySelectorAll('#messages .msg.assistant .stats').length === n, 6, { timeout: 60000 });
  assert.deepEqual(csp, []);
  await page.context().close();
});

test('usage page: the requests just made, per day and per model, against the quotas', async (t) => {
  if (skip(t)) return;
  const csp = [];
  const page = await openPage(big.url + '/usage', csp);
  await enterKey(page, key);
  await page.waitForSelector('#requests');
  const recs = run('usage', '--json', '--tenant', 'webco').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  assert.equal(Number((await page.textContent('#requests')).replace(/,/g, '')), recs.length);
  const tokens = recs.filter((r) => r.status !== 'error').reduce((a, r) => a + r.prompt_tokens + r.completion_tokens, 0);
  assert.equal(Number((await page.textContent('#tokens')).replace(/,/g, '')), recs.reduce((a, r) => a + r.prompt_tokens + r.completion_tokens, 0));
  const body = await page.textContent('main');
  assert.ok(body.includes('Llama-tiny') && body.includes('Llama-tiny-small'), 'both models are listed');
  assert.match(body, /tokens this month: 1,000,000/);
  assert.ok(await page.locator('svg.chart').count() >= 2);
  assert.ok(tokens > 0);
  // Spend: the month as one statement of this tenant, from the CLI.
  const now = new Date();
  const from = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1)).toISOString();
  const to = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1)).toISOString();
  const st = JSON.parse(run('statement', '--from', from, '--to', to, '--tenant', 'webco'));
  const amount = st.totals.overall.amount_micros;
  assert.equal(await page.textContent('#spend'), `${Math.floor(amount / 1e6)}.${String(amount % 1e6).padStart(6, '0')} USD`);
  await page.screenshot({ path: join(SHOTS, 'page-usage.png'), fullPage: true });
  assert.deepEqual(csp, []);
  await page.context().close();
});

test('host page: tenants with actions, and the statement with its files', async (t) => {
  if (skip(t)) return;
  const csp = [];
  const page = await openPage(big.url + '/admin', csp);
  await enterKey(page, ADMIN);
  await page.waitForSelector('tr[data-tenant="webco"]');
  assert.match(await page.textContent('tr[data-tenant="webco"]'), /active/);
  await page.waitForSelector('#digest');
  const now = new Date();
  const from = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1)).toISOString();
  const to = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1)).toISOString();
  const st = JSON.parse(run('statement', '--from', from, '--to', to, '--host', HOST));
  assert.equal(await page.textContent('#digest'), st.digest, 'the page shows the statement the CLI computes');
  const o = st.totals.overall;
  assert.equal(await page.textContent('#st-share'), `${Math.floor(o.share_micros / 1e6)}.${String(o.share_micros % 1e6).padStart(6, '0')} USD`);
  assert.match(await page.textContent('#statement'), /llama3\.1/);
  await page.screenshot({ path: join(SHOTS, 'page-admin.png'), fullPage: true });
  // The PDF and CSV downloads.
  const [pdf] = await Promise.all([page.waitForEvent('download'), page.click('button[data-format="pdf"]')]);
  const pdfPath = join(dir, 'st.pdf');
  await pdf.saveAs(pdfPath);
  assert.equal(readFileSync(pdfPath).subarray(0, 5).toString(), '%PDF-');
  assert.ok(execFileSync('pdftotext', [pdfPath, '-'], { encoding: 'utf8' }).includes(st.digest));
  const [csv] = await Promise.all([page.waitForEvent('download'), page.click('button[data-format="csv"]')]);
  const csvPath = join(dir, 'st.csv');
  await csv.saveAs(csvPath);
  assert.match(readFileSync(csvPath, 'utf8'), new RegExp(`^overall_total,,,,,,,${o.requests},`, 'm'));
  // Suspend and resume; a new key works at once.
  await page.click('tr[data-tenant="webco"] button:has-text("Suspend")');
  await page.waitForSelector('tr[data-tenant="webco"].suspended');
  assert.equal((await fetch(big.url + '/v1/models', { headers: { Authorization: `Bearer ${key}` } })).status, 403);
  await page.click('tr[data-tenant="webco"] button:has-text("Resume")');
  await page.waitForSelector('tr[data-tenant="webco"]:not(.suspended)');
  await page.click('tr[data-tenant="webco"] button:has-text("New key")');
  await page.waitForSelector('#new-key code.key');
  const fresh = await page.textContent('#new-key code.key');
  assert.equal((await fetch(big.url + '/v1/models', { headers: { Authorization: `Bearer ${fresh}` } })).status, 200);
  await page.click('tr[data-tenant="webco"] button:has-text("Keys")');
  await page.waitForSelector('tr[data-tenant="webco"] .keys li');
  const n = await page.locator('tr[data-tenant="webco"] .keys button:has-text("Revoke")').count();
  assert.equal(n, 2);
  await page.locator('tr[data-tenant="webco"] .keys button:has-text("Revoke")').last().click();
  await page.waitForFunction(() => document.querySelectorAll('tr[data-tenant="webco"] .keys button').length === 1);
  assert.equal((await fetch(big.url + '/v1/models', { headers: { Authorization: `Bearer ${fresh}` } })).status, 401);
  assert.equal((await fetch(big.url + '/v1/models', { headers: { Authorization: `Bearer ${key}` } })).status, 200);
  // The consortium: members, shares, its custom version, and the period's statement.
  await page.waitForSelector('[data-consortium="herd"]');
  const herd = await page.textContent('[data-consortium="herd"]');
  assert.match(herd, /WebCo.*webco.*60\.00%/s);
  assert.match(herd, /herd-1.*Llama-tiny.*members only/s);
  await page.waitForSelector('#consortium-digest');
  const cst = JSON.parse(run('consortium', 'statement', 'herd', '--from', from, '--to', to, '--format', 'json'));
  assert.equal(await page.textContent('#consortium-digest'), cst.digest, 'the page shows the statement the CLI computes');
  assert.equal(cst.jobs.length, 1);
  const rows = await page.$$eval('#consortium-balances tbody tr', (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
  const fmt = (m) => `${Math.floor(m / 1e6)}.${String(m % 1e6).padStart(6, '0')}`;
  assert.deepEqual(rows, cst.members.map((m) => [m.member, `${(m.share_bp / 100).toFixed(2)}%`, ...['money', 'compute', 'costs', 'revenue', 'balance'].map((k) => (m[k] < 0 ? '-' + fmt(-m[k]) : fmt(m[k])))]));
  assert.match(await page.textContent('#consortium-statement'), /job-1/);
  await page.screenshot({ path: join(SHOTS, 'page-admin-consortium.png'), fullPage: true });
  const [cpdf] = await Promise.all([page.waitForEvent('download'), page.click('button[data-cformat="pdf"]')]);
  const cpdfPath = join(dir, 'herd.pdf');
  await cpdf.saveAs(cpdfPath);
  const ctext = execFileSync('pdftotext', ['-layout', cpdfPath, '-'], { encoding: 'utf8' });
  assert.ok(ctext.includes(cst.digest), 'the PDF carries the digest');
  assert.match(ctext, /Consortium statement: herd/);
  for (const m of cst.members) assert.ok(ctext.includes(fmt(Math.abs(m.balance))), `the PDF shows ${m.member}'s balance`);
  const [ccsv] = await Promise.all([page.waitForEvent('download'), page.click('button[data-cformat="csv"]')]);
  const ccsvPath = join(dir, 'herd.csv');
  await ccsv.saveAs(ccsvPath);
  assert.match(readFileSync(ccsvPath, 'utf8'), new RegExp(`^digest,${cst.digest}$`, 'm'));
  assert.deepEqual(csp, []);
  await page.context().close();
});
