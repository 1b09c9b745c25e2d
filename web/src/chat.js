// The chat page: a key kept for this tab, a model from /v1/models, a system prompt, streamed
// answers with a stop button (aborting the request, so the server cancels it), per-answer token
// counts, time to first token and tok/s, Markdown rendered from untrusted model output with raw
// HTML disabled, and a conversation that outgrows the context by leaving out its oldest turns.
import { $, el, keyStore, keyForm, api, apiJson, ApiFailure } from './common.js';

const md = window.markdownit({ html: false, linkify: false, breaks: true });
md.disable(['image']);  // no request may leave the page's origin
const store = keyStore('corral-key');
let models = [];
let history = [];  // {role, content, node}
let ctl = null;

const status = (text, cls = 'muted') => $('#status').replaceChildren(text ? el('p', { class: cls }, text) : '');

function render(node, text) {
  // markdown-it with html: false escapes every tag of the model's text; the CSP forbids inline
  // scripts and handlers besides.
  node.innerHTML = md.render(text);
}

function addMessage(role, text) {
  const content = el('div', { class: 'content' });
  const li = el('li', { class: `msg ${role}` }, el('div', { class: 'role' }, role), content, el('div', { class: 'stats muted' }));
  if (role === 'assistant') render(content, text); else content.textContent = text;
  $('#messages').append(li);
  li.scrollIntoView({ block: 'end' });
  return li;
}

async function loadModels() {
  try {
    const list = await apiJson('/v1/models', store.get());
    models = list.data;
    const sel = $('#model');
    const keep = sel.value;
    sel.replaceChildren(...models.map((m) => el('option', { value: m.id }, m.id)));
    if (models.some((m) => m.id === keep)) sel.value = keep;
    showModel();
    status('');
  } catch (e) {
    models = [];
    $('#model').replaceChildren();
    status(e.status === 401 ? 'Enter an API key to chat.' : `Cannot list the models: ${e.message}`, e.status === 401 ? 'muted' : 'error');
  }
}

function current() { return models.find((m) => m.id === $('#model').value); }

function showModel() {
  const m = current();
  $('#model-info').textContent = m ? `context ${m.max_model_len} tokens` : '';
  const a = $('#attribution');
  a.replaceChildren();
  if (m && m.attribution) {
    a.append(el('strong', {}, m.attribution));
    if (m.license_name) a.append(' · ', m.license_link ? el('a', { href: m.license_link, rel: 'noopener noreferrer', target: '_blank' }, m.license_name) : m.license_name);
  }
}

function requestMessages() {
  const sys = $('#system').value.trim();
  const msgs = history.filter((h) => !h.dropped).map((h) => ({ role: h.role, content: h.content }));
  return sys ? [{ role: 'system', content: sys }, ...msgs] : msgs;
}

async function promptTokens(model, messages) {
  try {
    const r = await apiJson('/tokenize', store.get(), { method: 'POST', json: { model, messages } });
    return r.count;
  } catch { return null; }
}

// Leaves out the oldest turns until the prompt leaves room for an answer; returns its size.
async function fit(m) {
  const ctx = m.max_model_len;
  const budget = ctx - Math.min(256, Math.floor(ctx / 4));
  let n = await promptTokens(m.id, requestMessages());
  let dropped = 0;
  const drop = (h) => { h.dropped = true; h.node.classList.add('dropped'); ++dropped; };
  const kept = () => history.filter((h) => !h.dropped);
  while (n !== null && n > budget && kept().length > 1) {
    drop(kept()[0]);
    // Whole turns go: the conversation still starts with the user's message.
    while (kept().length > 1 && kept()[0].role === 'assistant') drop(kept()[0]);
    n = await promptTokens(m.id, requestMessages());
  }
  if (dropped)
    status(`${dropped} older message(s) no longer fit the model's context of ${ctx} tokens and were left out of this request (shown faded).`, 'note');
  return n;
}

async function send() {
  const text = $('#input').value.trim();
  const m = current();
  if (!text || ctl) return;
  if (!m) return status('Pick a model first (enter a key if the server needs one).', 'error');
  $('#input').value = '';
  const user = { role: 'user', content: text };
  user.node = addMessage('user', text);
  history.push(user);
  status('');
  const n = await fit(m);
  if (n !== null && n >= m.max_model_len) {
    user.node.classList.add('failed');
    user.node.querySelector('.stats').textContent = `This message alone takes ${n} tokens; the model's context is ${m.max_model_len}. Shorten it.`;
    history = history.filter((h) => h !== user);
    return;
  }
  const reply = { role: 'assistant', content: '' };
  reply.node = addMessage('assistant', '');
  const content = reply.node.querySelector('.content'), stats = reply.node.querySelector('.stats');
  ctl = new AbortController();
  $('#send').disabled = true;
  $('#stop').disabled = false;
  const t0 = performance.now();
  let tFirst = null, usage = null, pieces = 0, stopped = false, failed = null;
  try {
    const body = { model: m.id, messages: requestMessages(), stream: true, stream_options: { include_usage: true } };
    if (n !== null) body.max_tokens = Math.max(1, Math.min(1024, m.max_model_len - n));
    const res = await api('/v1/chat/completions', store.get(), { method: 'POST', json: body, signal: ctl.signal });
    if (!res.ok) {
      const e = await res.json().catch(() => ({}));
      throw new ApiFailure(res.status, e?.error?.message || res.statusText, e?.error?.code);
    }
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let buf = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        for (const line of block.split('\n')) {
          if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
          const j = JSON.parse(line.slice(6));
          if (j.error) throw new ApiFailure(500, j.error.message, j.error.code);
          if (j.usage) usage = j.usage;
          const d = j.choices?.[0]?.delta?.content;
          if (d) {
            if (tFirst === null) tFirst = performance.now();
            reply.content += d;
            ++pieces;
            render(content, reply.content);
          }
        }
      }
    }
  } catch (e) {
    if (e.name === 'AbortError') stopped = true; else failed = e;
  } finally {
    ctl = null;
    $('#send').disabled = false;
    $('#stop').disabled = true;
  }
  const tEnd = performance.now();
  if (failed && !reply.content) {
    reply.node.classList.add('failed');
    content.textContent = failed.message;
    return;
  }
  history.push(reply);
  const completion = usage ? usage.completion_tokens : pieces;
  const parts = [];
  if (usage) parts.push(`${usage.prompt_tokens} prompt${usage.prompt_tokens_details?.cached_tokens ? ` (${usage.prompt_tokens_details.cached_tokens} cached)` : ''} + ${completion} completion tokens`);
  else parts.push(`${completion} tokens`);
  if (tFirst !== null) {
    parts.push(`first token ${Math.round(tFirst - t0)} ms`);
    if (completion > 1 && tEnd > tFirst) parts.push(`${((completion - 1) / ((tEnd - tFirst) / 1000)).toFixed(1)} tok/s`);
  }
  if (stopped) parts.push('stopped');
  if (failed) parts.push(`error: ${failed.message}`);
  stats.textContent = parts.join(' · ');
}

$('#send-form').addEventListener('submit', (ev) => { ev.preventDefault(); send(); });
$('#input').addEventListener('keydown', (ev) => {
  if (ev.key === 'Enter' && !ev.shiftKey) { ev.preventDefault(); send(); }
});
$('#stop').addEventListener('click', () => { if (ctl) ctl.abort(); });
$('#clear').addEventListener('click', () => { if (ctl) ctl.abort(); history = []; $('#messages').replaceChildren(); status(''); });
$('#model').addEventListener('change', showModel);
keyForm($('#key-form'), $('#key'), $('#key-status'), store, loadModels);
if (!store.get()) loadModels();  // an open server lists its models without a key
