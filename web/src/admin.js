// The host's pages: tenants with their usage and limits (suspend, resume, new key, revoke key)
// and the statement of a chosen period with its chart, the licensor's share per family, and
// the JSON, CSV and PDF files. Everything goes through /admin/v1/* with the admin key.
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

async function download(format) {
  try {
    const r = await api(`/admin/v1/statement?${period()}&format=${format}`, store.get());
    if (!r.ok) throw new Error((await r.json().catch(() => ({}))).error?.message || r.statusText);
    const url = URL.createObjectURL(await r.blob());
    const a = el('a', { href: url, download: `statement-${$('#from').value}-${$('#to').value}.${format}` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (e) { showError($('#statement'), e); }
}

const [from, to] = monthBounds();
$('#from').value = from.toISOString().slice(0, 10);
$('#to').value = to.toISOString().slice(0, 10);
$('#period').addEventListener('submit', (ev) => { ev.preventDefault(); statement(); });
for (const b of document.querySelectorAll('[data-format]')) b.addEventListener('click', () => download(b.dataset.format));
keyForm($('#key-form'), $('#key'), $('#key-status'), store, () => { tenants(); statement(); });
