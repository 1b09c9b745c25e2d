// A tenant's usage this month, from GET /v1/usage: requests, tokens and spend per day and per
// model, as charts and tables, against the tenant's quotas.
import { $, el, keyStore, apiJson, keyForm, showError, money, num, barChart, table } from './common.js';

const store = keyStore('corral-key');

function limitRow(name, limit, used) {
  if (limit === null || limit === undefined) return el('li', {}, `${name}: no limit`);
  return el('li', {}, `${name}: ${num(limit)}`,
    used !== undefined ? [' ', el('progress', { max: limit, value: Math.min(used, limit) }), ` ${num(used)} used (${Math.round((100 * used) / limit)}%)`] : []);
}

async function load() {
  const out = $('#usage');
  try {
    const u = await apiJson('/v1/usage', store.get());
    const cur = u.currency;
    const tokens = u.totals.prompt_tokens + u.totals.completion_tokens;
    const days = u.by_day;
    out.replaceChildren(
      el('h2', {}, `Tenant ${u.tenant}: ${u.from.slice(0, 10)} to ${u.to.slice(0, 10)}`),
      el('div', { class: 'cards' },
        el('div', { class: 'card' }, el('div', { class: 'big', id: 'requests' }, num(u.totals.requests)), 'requests'),
        el('div', { class: 'card' }, el('div', { class: 'big', id: 'tokens' }, num(tokens)), 'tokens'),
        el('div', { class: 'card' }, el('div', { class: 'big', id: 'spend' }, money(u.spend_micros, cur)), 'spend')),
      el('h3', {}, 'Quotas'),
      el('ul', { class: 'limits' },
        limitRow('tokens this month', u.limits.monthly_tokens, u.month_tokens),
        limitRow('requests per minute', u.limits.rpm),
        limitRow('tokens per minute', u.limits.tpm),
        limitRow('requests at once', u.limits.max_concurrent)),
      el('h3', {}, 'Per day'),
      barChart(days.map((d) => d.day.slice(5)), [
        { name: 'tokens', values: days.map((d) => d.prompt_tokens + d.completion_tokens), cls: 's0' },
        { name: `spend (${cur})`, values: days.map((d) => d.amount_micros), cls: 's1', format: (v) => money(v, cur) },
      ]),
      table(['day', 'requests', 'prompt', 'cached', 'completion', `spend (${cur})`],
        days.map((d) => [d.day, num(d.requests), num(d.prompt_tokens), num(d.cached_tokens), num(d.completion_tokens), money(d.amount_micros)]),
        { numeric: [1, 2, 3, 4, 5] }),
      el('h3', {}, 'Per model'),
      barChart(u.by_model.map((m) => m.model), [
        { name: 'tokens', values: u.by_model.map((m) => m.prompt_tokens + m.completion_tokens), cls: 's0' },
        { name: `spend (${cur})`, values: u.by_model.map((m) => m.amount_micros), cls: 's1', format: (v) => money(v, cur) },
      ]),
      table(['model', 'requests', 'prompt', 'cached', 'completion', `spend (${cur})`],
        u.by_model.map((m) => [m.model, num(m.requests), num(m.prompt_tokens), num(m.cached_tokens), num(m.completion_tokens), money(m.amount_micros)]),
        { numeric: [1, 2, 3, 4, 5] }),
      el('h3', {}, 'Latest requests'),
      table(['started', 'model', 'status', 'prompt', 'cached', 'completion'],
        u.records.slice(-20).reverse().map((r) => [r.started_at.replace('T', ' ').slice(0, 19), r.model, r.status, num(r.prompt_tokens), num(r.cached_tokens), num(r.completion_tokens)]),
        { numeric: [3, 4, 5] }),
      el('p', { class: 'muted' }, `Spend per day and per model follows the statement arithmetic (micro-units, rounded half to even per line); the month's total is the month computed as one statement.`));
  } catch (e) {
    showError(out, e);
  }
}

keyForm($('#key-form'), $('#key'), $('#key-status'), store, load);
$('#refresh').addEventListener('click', load);
