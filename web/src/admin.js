// The host's pages: tenants with their usage and limits (suspend, resume, new key, revoke key)
// and the statement of a chosen period with its chart, the licensor's share per family, and
// the JSON, CSV and PDF files; the consortia (members, shares, custom versions) and a period's
// consortium statement (balances, each job's cost and parts, revenue paid back) with its files.
// Everything goes through /admin/v1/* with the admin key.
import { $, el, keyStore, api, apiJson, keyForm, showError, money, num, barChart, table, monthBounds } from './common.js';

const store = keyStore('corral-admin-key');
const lim = (v) => (v === null || v === undefined ? '-' : num(v));

async function tenants() {
  const out = $('#tenants');
  try {
    const ts = await apiJson('/admin/v1/tenants', store.get());
    const rows = ts.map((t) => {
      const keys = el('td', { class: 'keys' });
      const actions = el('td', {},
        el('button', { type: 'button', onclick: () => patch(t.name, { suspended: !t.suspended }) }, t.suspended ? 'Resume' : 'Suspend'), ' ',
        el('button', { type: 'button', onclick: () => newKey(t.name) }, 'New key'), ' ',
        el('button', { type: 'button', onclick: () => showKeys(t.name, keys) }, 'Keys'));
      return el('tr', { 'data-tenant': t.name, class: t.suspended ? 'suspended' : null },
        el('td', {}, t.name), el('td', {}, t.country ?? '-'), el('td', { class: 'n' }, num(t.mau)),
        el('td', {}, t.suspended ? 'suspended' : 'active'),
        el('td', { class: 'n' }, num(t.prompt_tokens + t.completion_tokens)),
        el('td', { class: 'n' }, `${lim(t.rpm)} / ${lim(t.tpm)} / ${lim(t.max_concurrent)} / ${lim(t.monthly_tokens)}`),
        actions, keys);
    });
    out.replaceChildren(el('table', { id: 'tenant-table' },
      el('thead', {}, el('tr', {}, ['tenant', 'country', 'MAU', 'state', 'tokens this month', 'rpm / tpm / concurrent / monthly', 'actions', 'keys'].map((h) => el('th', {}, h)))),
      el('tbody', {}, rows)));
  } catch (e) {
    showError(out, e);
  }
}

async function patch(name, body) {
  try { await apiJson(`/admin/v1/tenants/${encodeURIComponent(name)}`, store.get(), { method: 'PATCH', json: body }); } catch (e) { showError($('#new-key'), e); }
  tenants();
}

async function newKey(name) {
  try {
    const k = await apiJson(`/admin/v1/tenants/${encodeURIComponent(name)}/keys`, store.get(), { method: 'POST', json: {} });
    $('#new-key').replaceChildren(el('p', {}, `New key for ${name} (shown once): `, el('code', { class: 'key' }, k.api_key)));
  } catch (e) { showError($('#new-key'), e); }
}

async function showKeys(name, cell) {
  try {
    const ks = await apiJson(`/admin/v1/tenants/${encodeURIComponent(name)}/keys`, store.get());
    cell.replaceChildren(el('ul', {}, ks.map((k) => el('li', {}, el('code', {}, k.key_id), k.revoked ? ' revoked' : [' ',
      el('button', { type: 'button', onclick: async () => {
        try { await apiJson(`/admin/v1/keys/${encodeURIComponent(k.key_id)}`, store.get(), { method: 'DELETE' }); } catch (e) { showError($('#new-key'), e); }
        showKeys(name, cell);
      } }, 'Revoke')]))));
  } catch (e) { showError(cell, e); }
}

function period() {
  return `from=${$('#from').value}T00:00:00Z&to=${$('#to').value}T00:00:00Z`;
}

async function statement() {
  const out = $('#statement');
  try {
    const st = await apiJson(`/admin/v1/statement?${period()}`, store.get());
    const lic = await apiJson(`/admin/v1/statement?${period()}&licensor=1`, store.get());
    const cur = st.currency, o = st.totals.overall;
    const perModel = new Map();
    for (const l of st.lines) {
      const m = perModel.get(l.model) ?? { tokens: 0, amount: 0 };
      m.tokens += l.uncached_prompt_tokens + l.cached_prompt_tokens + l.completion_tokens;
      m.amount += l.amount_micros;
      perModel.set(l.model, m);
    }
    const fams = Object.entries(st.totals.by_family);
    out.replaceChildren(
      el('p', {}, `${st.from} to ${st.to}`, st.signature ? ' · closed and signed' : ' · open period', ` · digest `, el('code', { id: 'digest' }, st.digest)),
      el('div', { class: 'cards' },
        el('div', { class: 'card' }, el('div', { class: 'big', id: 'st-amount' }, money(o.amount_micros, cur)), 'revenue'),
        el('div', { class: 'card' }, el('div', { class: 'big', id: 'st-share' }, money(o.share_micros, cur)), "licensor's share"),
        el('div', { class: 'card' }, el('div', { class: 'big' }, money(o.net_micros, cur)), 'host net'),
        el('div', { class: 'card' }, el('div', { class: 'big' }, num(o.requests)), 'requests')),
      el('h3', {}, 'Tokens and revenue per model'),
      barChart([...perModel.keys()], [
        { name: 'tokens', values: [...perModel.values()].map((m) => m.tokens), cls: 's0' },
        { name: `revenue (${cur})`, values: [...perModel.values()].map((m) => m.amount), cls: 's1', format: (v) => money(v, cur) },
      ]),
      el('h3', {}, "The licensor's share per family"),
      table(['family', 'requests', 'tokens', `revenue (${cur})`, `share (${cur})`, `net (${cur})`, 'refusals'],
        fams.map(([f, t]) => [f, num(t.requests), num(t.uncached_prompt_tokens + t.cached_prompt_tokens + t.completion_tokens), money(t.amount_micros), money(t.share_micros), money(t.net_micros),
          Object.entries(lic.refusals?.[f] ?? {}).map(([c, n]) => `${c}: ${n}`).join(', ') || '-']),
        { numeric: [1, 2, 3, 4, 5] }),
      el('h3', {}, 'Lines'),
      table(['tenant', 'model', 'price v.', 'family', 'requests', 'uncached', 'cached', 'completion', `amount (${cur})`, `share (${cur})`],
        st.lines.map((l) => [l.tenant + (l.adjustment ? ' (adjustment)' : ''), l.model, l.price_version ?? '-', l.family, num(l.requests), num(l.uncached_prompt_tokens), num(l.cached_prompt_tokens), num(l.completion_tokens), money(l.amount_micros), money(l.share_micros)]),
        { numeric: [4, 5, 6, 7, 8, 9] }));
  } catch (e) {
    showError(out, e);
  }
}

const pct = (bp) => `${(bp / 100).toFixed(2)}%`;

async function consortia() {
  const out = $('#consortia');
  try {
    const cs = (await apiJson('/admin/v1/consortia', store.get())).data;
    const sel = $('#consortium');
    const was = sel.value;
    sel.replaceChildren(...cs.map((c) => el('option', { value: c.consortium }, c.consortium)));
    if (cs.some((c) => c.consortium === was)) sel.value = was;
    if (!cs.length) return;
    out.replaceChildren(...cs.map((c) => el('div', { class: 'consortium', 'data-consortium': c.consortium },
      el('h3', {}, c.consortium),
      el('p', { class: 'muted' }, `${c.currency} · compute at ${money(c.compute_price, c.currency)} per CPU hour · money contributed ${money(c.money, c.currency)} · ${num(c.compute_records)} compute records`),
      table(['member', 'tenants', 'share', 'share versions'],
        c.members.map((m) => [m.member, m.tenants.join(', '), pct(m.share_bp), m.versions.map((v) => `${pct(v.share_bp)} from ${v.from}`).join('; ')]),
        { numeric: [2] }),
      c.models.length ? table(['custom version', 'base', 'adapter', 'access'],
        c.models.map((m) => [m.model_id, m.base, m.adapter, m.public ? 'public' : 'members only'])) : el('p', { class: 'muted' }, 'No custom version yet.'))));
  } catch (e) {
    showError(out, e);
  }
}

const consortiumUrl = (format) =>
  `/admin/v1/consortia/${encodeURIComponent($('#consortium').value)}/statement?${period()}${format ? `&format=${format}` : ''}`;

async function consortiumStatement() {
  const out = $('#consortium-statement');
  if (!$('#consortium').value) return out.replaceChildren();
  try {
    const st = await apiJson(consortiumUrl(''), store.get());
    const cur = st.currency;
    const names = st.members.map((m) => m.member);
    out.replaceChildren(
      el('p', {}, `${st.consortium}: ${st.from} to ${st.to}`, st.signature ? ' · closed and signed' : ' · open period', ' · digest ', el('code', { id: 'consortium-digest' }, st.digest)),
      el('h3', {}, 'Balances (money + compute - costs + revenue)'),
      table(['member', 'share', `money (${cur})`, `compute (${cur})`, `costs (${cur})`, `revenue (${cur})`, `balance (${cur})`],
        st.members.map((m) => [m.member, pct(m.share_bp), money(m.money), money(m.compute), money(m.costs), money(m.revenue), money(m.balance)]),
        { numeric: [1, 2, 3, 4, 5, 6], id: 'consortium-balances' }),
      el('h3', {}, 'Training jobs'),
      st.jobs.length ? table(['job', 'CPU seconds', 'FLOPs', `cost (${cur})`, ...names.map((n) => `${n} (${cur})`)],
        st.jobs.map((j) => [j.job, j.cpu_seconds.toFixed(3), num(j.flops), money(j.cost), ...names.map((n) => money(j.parts.find((p) => p.member === n)?.amount ?? 0))]),
        { numeric: [1, 2, 3, ...names.map((_, i) => 4 + i)] }) : el('p', { class: 'muted' }, 'No job in this period.'),
      el('h3', {}, 'Revenue of public custom versions'),
      st.revenue.length ? table(['model', 'requests', `amount (${cur})`, `licensor (${cur})`, `net (${cur})`, ...names.map((n) => `${n} (${cur})`)],
        st.revenue.map((r) => [r.model, num(r.requests), money(r.amount), money(r.licensor_share), money(r.net), ...names.map((n) => money(r.parts.find((p) => p.member === n)?.amount ?? 0))]),
        { numeric: [1, 2, 3, 4, ...names.map((_, i) => 5 + i)] }) : el('p', { class: 'muted' }, 'No public revenue in this period.'));
  } catch (e) {
    showError(out, e);
  }
}

async function saveFile(url, name) {
  try {
    const r = await api(url, store.get());
    if (!r.ok) throw new Error((await r.json().catch(() => ({}))).error?.message || r.statusText);
    const blobUrl = URL.createObjectURL(await r.blob());
    const a = el('a', { href: blobUrl, download: name });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(blobUrl), 10000);
  } catch (e) { showError($('#statement'), e); }
}

async function download(format) {
  return saveFile(`/admin/v1/statement?${period()}&format=${format}`, `statement-${$('#from').value}-${$('#to').value}.${format}`);
}

async function downloadConsortium(format) {
  if (!$('#consortium').value) return;
  return saveFile(consortiumUrl(format), `consortium-${$('#consortium').value}-${$('#from').value}-${$('#to').value}.${format}`);
}

const [from, to] = monthBounds();
$('#from').value = from.toISOString().slice(0, 10);
$('#to').value = to.toISOString().slice(0, 10);
$('#period').addEventListener('submit', (ev) => { ev.preventDefault(); statement(); });
for (const b of document.querySelectorAll('[data-format]')) b.addEventListener('click', () => download(b.dataset.format));
$('#consortium-period').addEventListener('submit', (ev) => { ev.preventDefault(); consortiumStatement(); });
for (const b of document.querySelectorAll('[data-cformat]')) b.addEventListener('click', () => downloadConsortium(b.dataset.cformat));
keyForm($('#key-form'), $('#key'), $('#key-status'), store, async () => { tenants(); statement(); await consortia(); consortiumStatement(); });
