// What the three pages share: DOM building without innerHTML, the key kept in session storage,
// API calls with the bearer key, money in micro-units, and a small SVG bar chart.
export const $ = (sel) => document.querySelector(sel);

// el('td', {class: 'n'}, 'text', child): children are text (never parsed as HTML) or nodes.
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  return e;
}

// The key lives in this tab's session storage only (gone when the tab closes).
export function keyStore(name) {
  return {
    get: () => sessionStorage.getItem(name) || '',
    set: (v) => sessionStorage.setItem(name, v),
    clear: () => sessionStorage.removeItem(name),
  };
}

export class ApiFailure extends Error {
  constructor(status, message, code) { super(message); this.status = status; this.code = code; }
}

export async function api(path, key, opts = {}) {
  const headers = { ...(opts.headers || {}) };
  if (key) headers.Authorization = `Bearer ${key}`;
  const init = { ...opts, headers };
  if (opts.json !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(opts.json);
    delete init.json;
  }
  return fetch(path, init);
}

export async function apiJson(path, key, opts = {}) {
  const r = await api(path, key, opts);
  let body = null;
  try { body = await r.json(); } catch { /* not JSON */ }
  if (!r.ok) throw new ApiFailure(r.status, body?.error?.message || `${r.status} ${r.statusText}`, body?.error?.code);
  return body;
}

// 12345678 micro-units -> "12.345678 USD" (integer arithmetic, never a float).
export function money(m, currency = '') {
  const neg = m < 0, a = Math.abs(m);
  const s = `${neg ? '-' : ''}${Math.floor(a / 1e6)}.${String(a % 1e6).padStart(6, '0')}`;
  return currency ? `${s} ${currency}` : s;
}
export const num = (n) => Number(n).toLocaleString('en-US');

// A key form: remembers the key, calls onKey(key) now (if one is stored) and on submit.
export function keyForm(form, input, status, store, onKey) {
  if (store.get()) { input.value = ''; status.textContent = 'key set for this tab'; }
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const k = input.value.trim();
    if (!k) return;
    store.set(k);
    input.value = '';
    status.textContent = 'key set for this tab';
    onKey(k);
  });
  if (store.get()) onKey(store.get());
}

export function showError(where, err) {
  where.replaceChildren(el('p', { class: 'error', role: 'alert' }, err.message || String(err)));
}

const SVG = 'http://www.w3.org/2000/svg';
const svg = (tag, attrs = {}, ...children) => {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
};

// Grouped bars: labels along x, one bar per series, each series scaled to its own maximum
// (tokens and money have different units). series: [{name, values, cls, format}].
export function barChart(labels, series, { height = 180 } = {}) {
  const longest = Math.max(0, ...labels.map((l) => String(l).length));
  const groupW = Math.max(28, 14 * series.length + 12, Math.min(170, 6.5 * longest + 10)), left = 8, top = 18, bottom = 34;
  const width = Math.max(320, left * 2 + groupW * labels.length);
  const h = height - top - bottom;
  const root = svg('svg', { viewBox: `0 0 ${width} ${height}`, width, height, class: 'chart', role: 'img' });
  root.append(svg('title', {}, series.map((s) => s.name).join(' and ') + ' by ' + (labels.length ? 'item' : 'nothing')));
  series.forEach((s, si) => {
    const max = Math.max(1, ...s.values);
    s.values.forEach((v, i) => {
      const bh = Math.max(v > 0 ? 1 : 0, (v / max) * h);
      const x = left + i * groupW + 6 + si * 14;
      const bar = svg('rect', { x, y: top + h - bh, width: 12, height: bh, class: s.cls });
      bar.append(svg('title', {}, `${labels[i]}: ${s.format ? s.format(v) : v} ${s.name}`));
      root.append(bar);
    });
  });
  labels.forEach((l, i) => root.append(svg('text', { x: left + i * groupW + groupW / 2, y: height - 18, 'text-anchor': 'middle', class: 'axis' }, l)));
  series.forEach((s, si) => {
    root.append(svg('rect', { x: left + si * 110, y: height - 10, width: 10, height: 8, class: s.cls }));
    root.append(svg('text', { x: left + si * 110 + 14, y: height - 2, class: 'axis' }, s.name));
  });
  return root;
}

export function table(headers, rows, { numeric = [], id = null } = {}) {
  return el('table', { id },
    el('thead', {}, el('tr', {}, headers.map((h, i) => el('th', { class: numeric.includes(i) ? 'n' : null }, h)))),
    el('tbody', {}, rows.map((r) => el('tr', {}, r.map((c, i) => el('td', { class: numeric.includes(i) ? 'n' : null }, c))))));
}

export function monthBounds(d = new Date()) {
  const from = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1));
  const to = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1));
  return [from, to];
}
