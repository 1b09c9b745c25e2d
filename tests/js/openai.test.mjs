// The official OpenAI client against `corral serve`: models, chat, completions, streaming with
// and without usage, stop strings, seeds, logprobs, n, tokenize and errors.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startServer, tinyModel, sseEvents } from './server.mjs';

const KEY = 'test-key-123';
let srv, client;

before(async () => {
  srv = await startServer(['-m', `tiny=${tinyModel('q4_0')}`, '--api-key', KEY, '--parallel', '4']);
  client = new OpenAI({ baseURL: srv.url + '/v1', apiKey: KEY, maxRetries: 0 });
});
after(async () => {
  const r = await srv.stop();
  assert.equal(r.code, 0, 'server exits 0 on SIGTERM');
});

const user = (content) => [{ role: 'user', content }];
const post = (path, body, key = KEY) =>
  fetch(srv.url + path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...(key ? { Authorization: `Bearer ${key}` } : {}) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });

function assertError(body, status) {
  assert.ok(body.error, `error object (status ${status})`);
  for (const k of ['message', 'type', 'param', 'code']) assert.ok(k in body.error, `error.${k} present`);
  assert.equal(typeof body.error.message, 'string');
}

test('models lists the id, max_model_len and license', async () => {
  const list = await client.models.list();
  const ids = list.data.map((m) => m.id);
  assert.deepEqual(ids, ['tiny']);
  assert.equal(list.data[0].object, 'model');
  assert.equal(list.data[0].max_model_len, 4096);
  assert.ok('license' in list.data[0]);
  const one = await client.models.retrieve('tiny');
  assert.equal(one.id, 'tiny');
});

test('chat completion has the OpenAI shape and usage', async () => {
  const r = await client.chat.completions.create({ model: 'tiny', messages: user('Hello there'), max_tokens: 5, temperature: 0 });
  assert.match(r.id, /^chatcmpl-/);
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.model, 'tiny');
  assert.ok(Number.isInteger(r.created));
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].index, 0);
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(typeof r.choices[0].message.content, 'string');
  assert.ok(['length', 'stop'].includes(r.choices[0].finish_reason));
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  assert.ok(r.usage.completion_tokens <= 5 && r.usage.completion_tokens >= 1);
  assert.equal(typeof r.usage.prompt_tokens_details.cached_tokens, 'number');
  // The Llama 3 template: <|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello there<|eot_id|> + header.
  const tk = await (await post('/tokenize', { prompt: '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello there<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n', add_special_tokens: false })).json();
  assert.equal(r.usage.prompt_tokens, tk.count, 'prompt tokens are the rendered chat template');
});

test('message content as text parts equals plain string content', async () => {
  const a = await client.chat.completions.create({ model: 'tiny', messages: user('Hi you'), max_tokens: 8, temperature: 0 });
  const b = await client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: [{ type: 'text', text: 'Hi ' }, { type: 'text', text: 'you' }] }], max_tokens: 8, temperature: 0 });
  assert.equal(a.choices[0].message.content, b.choices[0].message.content);
});

test('greedy is deterministic and a repeated long prompt is served from the prefix cache', async () => {
  const long = 'The quick brown fox jumps over the lazy dog. '.repeat(6);
  const a = await client.chat.completions.create({ model: 'tiny', messages: user(long), max_tokens: 12, temperature: 0 });
  const b = await client.chat.completions.create({ model: 'tiny', messages: user(long), max_tokens: 12, temperature: 0 });
  assert.equal(a.choices[0].message.content, b.choices[0].message.content);
  assert.ok(a.usage.prompt_tokens >= 32);
  assert.ok(b.usage.prompt_tokens_details.cached_tokens >= 16, `cached ${b.usage.prompt_tokens_details.cached_tokens}`);
  assert.ok(b.usage.prompt_tokens_details.cached_tokens < b.usage.prompt_tokens);
});

test('streamed deltas concatenate to the non-streamed text; framing as OpenAI sends it', async () => {
  const body = { model: 'tiny', messages: user('Tell me a story about a river'), max_tokens: 24, temperature: 0 };
  const whole = await client.chat.completions.create(body);
  // With the client.
  let text = '';
  let finishes = 0;
  for await (const chunk of await client.chat.completions.create({ ...body, stream: true })) {
    for (const c of chunk.choices) {
      text += c.delta.content ?? '';
      if (c.finish_reason) finishes++;
    }
  }
  assert.equal(text, whole.choices[0].message.content);
  assert.equal(finishes, 1);
  // Raw framing without usage.
  let res = await post('/v1/chat/completions', { ...body, stream: true });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/event-stream/);
  let ev = await sseEvents(res);
  assert.equal(ev.at(-1), '[DONE]');
  let chunks = ev.slice(0, -1).map((e) => JSON.parse(e));
  assert.equal(chunks[0].choices[0].delta.role, 'assistant');
  assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.model === 'tiny' && c.id === chunks[0].id));
  assert.ok(chunks.every((c) => !c.usage), 'no usage chunk without include_usage');
  const fin = chunks.filter((c) => c.choices.some((x) => x.finish_reason));
  assert.equal(fin.length, 1);
  assert.equal(fin[0], chunks.at(-1), 'finish_reason on the last choice chunk');
  assert.deepEqual(fin[0].choices[0].delta, {});
  // With include_usage: exactly one usage chunk, choices [], just before [DONE].
  res = await post('/v1/chat/completions', { ...body, stream: true, stream_options: { include_usage: true } });
  ev = await sseEvents(res);
  assert.equal(ev.at(-1), '[DONE]');
  chunks = ev.slice(0, -1).map((e) => JSON.parse(e));
  const usage = chunks.filter((c) => c.usage);
  assert.equal(usage.length, 1);
  assert.equal(usage[0], chunks.at(-1));
  assert.deepEqual(usage[0].choices, []);
  assert.deepEqual(usage[0].usage.completion_tokens, whole.usage.completion_tokens);
  assert.equal(usage[0].usage.prompt_tokens, whole.usage.prompt_tokens);
});

test('completions: text and id prompts, echo, legacy logprobs, streaming', async () => {
  const r = await client.completions.create({ model: 'tiny', prompt: 'Once upon a time', max_tokens: 10, temperature: 0 });
  assert.match(r.id, /^cmpl-/);
  assert.equal(r.object, 'text_completion');
  assert.equal(typeof r.choices[0].text, 'string');
  const ids = (await (await post('/tokenize', { prompt: 'Once upon a time' })).json()).tokens;
  const r2 = await client.completions.create({ model: 'tiny', prompt: ids, max_tokens: 10, temperature: 0 });
  assert.equal(r2.choices[0].text, r.choices[0].text, 'ids and text give the same answer');
  assert.equal(r2.usage.prompt_tokens, ids.length);
  const e = await client.completions.create({ model: 'tiny', prompt: 'Once upon a time', max_tokens: 10, temperature: 0, echo: true, logprobs: 2 });
  assert.equal(e.choices[0].text, 'Once upon a time' + r.choices[0].text);
  const lp = e.choices[0].logprobs;
  assert.equal(lp.tokens.length, ids.length + e.usage.completion_tokens);
  assert.equal(lp.token_logprobs[0], null);
  assert.ok(lp.token_logprobs.slice(1).every((x) => typeof x === 'number' && x <= 0));
  assert.ok(lp.top_logprobs.slice(1).every((x) => Object.keys(x).length >= 1 && Object.keys(x).length <= 2));
  let text = '';
  for await (const c of await client.completions.create({ model: 'tiny', prompt: 'Once upon a time', max_tokens: 10, temperature: 0, stream: true }))
    text += c.choices[0]?.text ?? '';
  assert.equal(text, r.choices[0].text);
});

test('stop strings cut the output at the earliest match and never leak, streamed or not', async () => {
  const body = { model: 'tiny', prompt: 'A list of words:', max_tokens: 40, temperature: 0 };
  const full = (await client.completions.create(body)).choices[0].text;
  assert.ok(full.length > 20, `greedy text long enough: ${JSON.stringify(full)}`);
  // Two stops: one from the middle, one later; the earliest wins.
  const mid = full.slice(Math.floor(full.length / 2), Math.floor(full.length / 2) + 3);
  const late = full.slice(-4);
  const cut = Math.min(full.indexOf(mid), full.indexOf(late));
  const r = await client.completions.create({ ...body, stop: [late, mid] });
  assert.equal(r.choices[0].text, full.slice(0, cut));
  assert.equal(r.choices[0].finish_reason, 'stop');
  let text = '';
  for await (const c of await client.completions.create({ ...body, stop: [late, mid], stream: true })) text += c.choices[0]?.text ?? '';
  assert.equal(text, full.slice(0, cut));
  assert.ok(!text.includes(mid.slice(0, 1)) || !full.slice(0, cut).endsWith(mid.slice(0, 1)) || text === full.slice(0, cut));
});

test('seeds make sampling reproducible', async () => {
  const body = { model: 'tiny', messages: user('Pick a word'), max_tokens: 16, temperature: 1.0, seed: 42 };
  const a = await client.chat.completions.create(body);
  const b = await client.chat.completions.create(body);
  assert.equal(a.choices[0].message.content, b.choices[0].message.content);
  const c = await client.chat.completions.create({ ...body, seed: 43 });
  assert.notEqual(a.choices[0].message.content, c.choices[0].message.content);
});

test('chat logprobs: the greedy token is the most likely alternative', async () => {
  const r = await client.chat.completions.create({ model: 'tiny', messages: user('Hi'), max_tokens: 4, temperature: 0, logprobs: true, top_logprobs: 3 });
  const content = r.choices[0].logprobs.content;
  assert.equal(content.length, r.usage.completion_tokens);
  for (const t of content) {
    assert.equal(t.top_logprobs.length, 3);
    assert.equal(t.top_logprobs[0].token, t.token);
    assert.ok(Math.abs(t.top_logprobs[0].logprob - t.logprob) < 1e-6);
    assert.ok(t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob);
    assert.deepEqual(t.bytes, [...Buffer.from(t.token)]);
  }
});

test('n choices', async () => {
  const r = await client.chat.completions.create({ model: 'tiny', messages: user('Hi'), max_tokens: 6, temperature: 0, n: 3 });
  assert.equal(r.choices.length, 3);
  assert.deepEqual(r.choices.map((c) => c.index), [0, 1, 2]);
  assert.equal(new Set(r.choices.map((c) => c.message.content)).size, 1);
  assert.equal(r.usage.completion_tokens, r.choices.length * 6);
});

test('tokenize and detokenize round-trip', async () => {
  const t = await (await post('/tokenize', { model: 'tiny', prompt: 'héllo wörld 🌍', add_special_tokens: false })).json();
  assert.ok(t.tokens.length > 3);
  assert.equal(t.count, t.tokens.length);
  assert.equal(t.max_model_len, 4096);
  const d = await (await post('/detokenize', { model: 'tiny', tokens: t.tokens })).json();
  assert.equal(d.prompt, 'héllo wörld 🌍');
});

test('errors: status codes and error objects', async () => {
  const cases = [
    [await post('/v1/chat/completions', '{"model": "tiny", "messages": [', KEY), 400],
    [await post('/v1/chat/completions', { model: 'tiny', messages: [] }), 400],
    [await post('/v1/chat/completions', { model: 'tiny' }), 400],
    [await post('/v1/chat/completions', { model: 'tiny', messages: 'hi' }), 400],
    [await post('/v1/chat/completions', { model: 'tiny', messages: [{ role: 'wizard', content: 'x' }] }), 400],
    [await post('/v1/chat/completions', { model: 'tiny', messages: user('x'), max_tokens: 0 }), 400],
    [await post('/v1/chat/completions', { model: 'tiny', messages: user('x'), max_tokens: -3 }), 400],
    [await post('/v1/chat/completions', { model: 'tiny', messages: user('x'), temperature: 'hot' }), 400],
    [await post('/v1/chat/completions', { model: 'tiny', messages: user('x'), stop: Array(17).fill('a') }), 400],
    [await post('/v1/completions', { model: 'tiny', prompt: [1, -2] }), 400],
    [await post('/v1/chat/completions', { model: 'nope', messages: user('x') }), 404],
    [await post('/v1/nothing', {}), 404],
    [await post('/v1/chat/completions', { model: 'tiny', messages: user('x') }, null), 401],
    [await post('/v1/chat/completions', { model: 'tiny', messages: user('x') }, 'wrong'), 401],
  ];
  for (const [res, status] of cases) {
    assert.equal(res.status, status, await res.clone().text());
    assert.match(res.headers.get('content-type'), /^application\/json/);
    assertError(await res.json(), status);
  }
  const models = await fetch(srv.url + '/v1/models');
  assert.equal(models.status, 401);
  const bad = await (await post('/v1/chat/completions', { model: 'tiny', messages: user('x'), temperature: 'hot' })).json();
  assert.equal(bad.error.param, 'temperature');
  await assert.rejects(client.chat.completions.create({ model: 'nope', messages: user('x') }), (e) => e.status === 404);
  const wrong = new OpenAI({ baseURL: srv.url + '/v1', apiKey: 'wrong', maxRetries: 0 });
  await assert.rejects(wrong.models.list(), (e) => e.status === 401);
  assert.equal((await fetch(srv.url + '/health')).status, 200, '/health needs no key');
});

test('a prompt that does not fit the context is a 400 naming the limit and the count, before any SSE byte', async () => {
  const long = 'word '.repeat(5000);
  for (const stream of [false, true]) {
    const res = await post('/v1/chat/completions', { model: 'tiny', messages: user(long), stream });
    assert.equal(res.status, 400);
    assert.match(res.headers.get('content-type'), /^application\/json/);
    const b = await res.json();
    assertError(b, 400);
    assert.match(b.error.message, /4096/);
    assert.match(b.error.message, /\b50\d\d tokens/);
    assert.equal(b.error.code, 'context_length_exceeded');
  }
});

test('UTF-8 is never split: multilingual streamed text equals the whole', async () => {
  const body = { model: 'tiny', prompt: '日本語のテキストと絵文字 🎉🎉 и кириллица', max_tokens: 48, temperature: 0, ignore_eos: true };
  const whole = (await client.completions.create(body)).choices[0].text;
  const res = await post('/v1/completions', { ...body, stream: true });
  const ev = await sseEvents(res);
  const parts = ev.slice(0, -1).map((e) => JSON.parse(e).choices[0]?.text ?? '');
  assert.equal(parts.join(''), whole);
  assert.ok(!whole.includes('\uFFFD'), 'no replacement characters');
});

test('/metrics is Prometheus text with the serving metrics', async () => {
  const res = await fetch(srv.url + '/metrics', { headers: { Authorization: `Bearer ${KEY}` } });
  const t = await res.text();
  for (const name of ['corral_requests_total', 'corral_prompt_tokens_total', 'corral_cached_prompt_tokens_total',
    'corral_generated_tokens_total', 'corral_time_to_first_token_seconds_bucket', 'corral_inter_token_latency_seconds_bucket',
    'corral_queue_length', 'corral_running_sequences', 'corral_kv_blocks_used', 'corral_kv_blocks_total', 'corral_batch_size'])
    assert.ok(t.includes(name), name);
  assert.match(t, /corral_requests_total\{route="\/v1\/chat\/completions",status="200"\} \d+/);
});
