// The Responses API and embeddings through the official OpenAI client (pinned in package.json)
// against `corral serve` with a SQLite ledger and two tenants: text, the typed stream (event
// order, sequence numbers, deltas concatenating to the final text), a forced function call and
// its output sent back (by previous_response_id and statelessly, rendered the same),
// continuation with cached tokens, stored responses visible to their tenant only, store:false,
// embeddings (the client's base64 default against floats), metering and quotas on both routes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { startServer, tinyModel, BIN } from './server.mjs';

const dir = mkdtempSync(join(tmpdir(), 'corral-resp-'));
const DSN = `sqlite:${join(dir, 'ledger.db')}`;
const corral = (...args) => execFileSync(BIN, [...args, '--ledger', DSN], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const usageRecords = () => corral('usage', '--json').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const WEATHER = {
  type: 'function', name: 'get_weather', description: 'Current weather', strict: true,
  parameters: { type: 'object', properties: { city: { type: 'string', enum: ['Rome', 'Paris'] } }, required: ['city'], additionalProperties: false },
};
const LONG = 'Tell me everything you know about the history of the city of Rome, from its founding to the fall of the Western empire, in order.';
let srv, alpha, beta, A, B;

before(async () => {
  alpha = JSON.parse(corral('tenant', 'add', 'alpha', '--json'));
  beta = JSON.parse(corral('tenant', 'add', 'beta', '--json'));
  srv = await startServer(['-m', `tiny=${tinyModel('q8_0')}`, '--ledger', DSN, '--parallel', '4']);
  A = new OpenAI({ baseURL: srv.url + '/v1', apiKey: alpha.api_key, maxRetries: 0 });
  B = new OpenAI({ baseURL: srv.url + '/v1', apiKey: beta.api_key, maxRetries: 0 });
});
after(async () => { assert.equal((await srv.stop()).code, 0); });

async function events(params) {
  const out = [];
  for await (const e of await A.responses.create({ ...params, stream: true })) out.push(e);
  return out;
}

test('text: a response object with its message, output_text and usage', async () => {
  const r = await A.responses.create({ model: 'tiny', input: 'Hello there', instructions: 'Be brief.', max_output_tokens: 8, temperature: 0 });
  assert.equal(r.object, 'response');
  assert.match(r.id, /^resp_/);
  assert.ok(['completed', 'incomplete'].includes(r.status));
  if (r.status === 'incomplete') assert.equal(r.incomplete_details.reason, 'max_output_tokens');
  assert.equal(r.output[0].type, 'message');
  assert.equal(r.output[0].role, 'assistant');
  assert.equal(r.output[0].content[0].type, 'output_text');
  assert.equal(r.output_text, r.output[0].content[0].text);
  assert.ok(r.output_text.length > 0);
  assert.equal(r.instructions, 'Be brief.');
  assert.ok(r.usage.input_tokens > 5 && r.usage.output_tokens > 0 && r.usage.output_tokens <= 8);
  assert.equal(r.usage.total_tokens, r.usage.input_tokens + r.usage.output_tokens);
  assert.equal(typeof r.usage.input_tokens_details.cached_tokens, 'number');
  // Items as input (input_text parts, a developer message) render like the plain string.
  const r2 = await A.responses.create({
    model: 'tiny', max_output_tokens: 8, temperature: 0,
    input: [{ role: 'developer', content: 'Be brief.' }, { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Hello ' }, { type: 'input_text', text: 'there' }] }],
  });
  assert.equal(r2.usage.input_tokens, r.usage.input_tokens);
  assert.equal(r2.output_text, r.output_text, 'greedy: the same answer');
});

test('stream: typed events in order, sequence numbers, deltas concatenating to the final text', async () => {
  const params = { model: 'tiny', input: 'Say something', max_output_tokens: 12, temperature: 0 };
  const ev = await events(params);
  const types = ev.map((e) => e.type);
  assert.deepEqual(types.slice(0, 4), ['response.created', 'response.in_progress', 'response.output_item.added', 'response.content_part.added']);
  const last = types.at(-1);
  assert.ok(last === 'response.completed' || last === 'response.incomplete', last);
  assert.deepEqual(types.slice(-4, -1), ['response.output_text.done', 'response.content_part.done', 'response.output_item.done']);
  assert.ok(types.slice(4, -4).every((t) => t === 'response.output_text.delta'), types.join(' '));
  assert.deepEqual(ev.map((e) => e.sequence_number), ev.map((_, i) => i));
  assert.equal(ev[0].response.status, 'in_progress');
  const deltas = ev.filter((e) => e.type === 'response.output_text.delta').map((e) => e.delta).join('');
  const done = ev.find((e) => e.type === 'response.output_text.done').text;
  const final = ev.at(-1).response;
  assert.equal(deltas, done);
  assert.equal(final.output[0].content[0].text, done);
  assert.equal(final.id, ev[0].response.id);
  assert.ok(final.usage.output_tokens > 0);
  const plain = await A.responses.create(params);
  assert.equal(plain.output_text, done, 'streamed equals not (greedy)');
  // The client's stream helper accumulates the same response from the events.
  const helper = A.responses.stream(params);
  let snap = '';
  helper.on('response.output_text.delta', (e) => { snap = e.snapshot; });
  const fin = await helper.finalResponse();
  assert.equal(fin.output[0].content[0].text, done);
  assert.equal(snap, done);
  // The stored one is the final response.
  assert.deepEqual((await A.responses.retrieve(final.id)).output, final.output);
});

test('a function call and its output sent back: by previous_response_id and statelessly, the same', async () => {
  const first = { model: 'tiny', input: 'What is the weather in Rome?', tools: [WEATHER], tool_choice: 'required', max_output_tokens: 150, temperature: 0 };
  const r1 = await A.responses.create(first);
  assert.equal(r1.status, 'completed', JSON.stringify(r1.output));
  const call = r1.output.find((o) => o.type === 'function_call');
  assert.ok(call, JSON.stringify(r1.output));
  assert.equal(call.name, 'get_weather');
  assert.match(call.call_id, /^call_/);
  assert.ok(['Rome', 'Paris'].includes(JSON.parse(call.arguments).city), call.arguments);
  const output = { type: 'function_call_output', call_id: call.call_id, output: '{"temperature": 21}' };
  const r2 = await A.responses.create({ model: 'tiny', previous_response_id: r1.id, input: [output], tools: [WEATHER], max_output_tokens: 6, temperature: 0 });
  assert.equal(r2.previous_response_id, r1.id);
  const r3 = await A.responses.create({ model: 'tiny', input: [{ role: 'user', content: first.input }, ...r1.output, output], tools: [WEATHER], max_output_tokens: 6, temperature: 0 });
  assert.equal(r3.usage.input_tokens, r2.usage.input_tokens, 'the same conversation either way');
  assert.equal(r3.output_text, r2.output_text);
  assert.ok(r2.usage.input_tokens > r1.usage.input_tokens + 10, 'the call and its output are in the prompt');
  // Streamed: the call as its own item with argument deltas.
  const ev = await events(first);
  const types = ev.map((e) => e.type);
  for (const t of ['response.output_item.added', 'response.function_call_arguments.delta', 'response.function_call_arguments.done', 'response.output_item.done', 'response.completed'])
    assert.ok(types.includes(t), `${t} in ${types.join(' ')}`);
  const args = ev.filter((e) => e.type === 'response.function_call_arguments.delta').map((e) => e.delta).join('');
  assert.equal(args, ev.find((e) => e.type === 'response.function_call_arguments.done').arguments);
  const fc = ev.at(-1).response.output.find((o) => o.type === 'function_call');
  assert.equal(fc.arguments, args);
  assert.equal(args, call.arguments, 'streamed equals not (greedy)');
  const helper = await A.responses.stream(first).finalResponse();
  assert.equal(helper.output.find((o) => o.type === 'function_call').arguments, call.arguments);
});

test('previous_response_id continues the conversation with the prefix cache hit', async () => {
  const r1 = await A.responses.create({ model: 'tiny', instructions: 'You are a historian.', input: LONG, max_output_tokens: 10, temperature: 0 });
  const r2 = await A.responses.create({ model: 'tiny', instructions: 'You are a historian.', previous_response_id: r1.id, input: 'And then?', max_output_tokens: 5, temperature: 0 });
  assert.ok(r2.usage.input_tokens > r1.usage.input_tokens + r1.usage.output_tokens, 'the first turn is in the prompt');
  assert.ok(r2.usage.input_tokens_details.cached_tokens >= 32, `cached ${r2.usage.input_tokens_details.cached_tokens} of ${r2.usage.input_tokens}`);
  // A missing previous response is a 404.
  await assert.rejects(A.responses.create({ model: 'tiny', previous_response_id: 'resp_nope', input: 'x' }), (e) => e.status === 404 && e.param === 'previous_response_id');
});

test('model output with invalid UTF-8 (byte tokens out of place) is kept as U+FFFD and continues', async () => {
  // Found by search: this tiny model, greedy, answers this prompt with lone byte tokens. The
  // stored text must be valid UTF-8, or the follow-up's template input cannot be written.
  const params = { model: 'tiny', input: 'Story 40 about a fox.', max_output_tokens: 64, temperature: 0 };
  const ev = await events(params);
  const first = ev.at(-1).response;
  const text = first.output[0].content[0].text;
  assert.ok(text.includes('\uFFFD'), JSON.stringify(text));
  const deltas = ev.filter((e) => e.type === 'response.output_text.delta').map((e) => e.delta).join('');
  assert.equal(deltas, text);
  const plain = await A.responses.create(params);
  assert.equal(plain.output_text, text);
  first.output_text = text;
  for (const prev of [first, plain]) {
    const next = await A.responses.create({ model: 'tiny', previous_response_id: prev.id, input: 'And then?', max_output_tokens: 4, temperature: 0 });
    assert.ok(next.usage.input_tokens > prev.usage.input_tokens, 'the follow-up carries the first answer');
    assert.equal((await A.responses.retrieve(prev.id)).output_text, prev.output_text);
  }
});

test('stored responses: only their tenant reads, continues or deletes them; store:false keeps nothing', async () => {
  const r = await A.responses.create({ model: 'tiny', input: 'secret', max_output_tokens: 3 });
  assert.equal((await A.responses.retrieve(r.id)).id, r.id);
  await assert.rejects(B.responses.retrieve(r.id), (e) => e.status === 404);
  await assert.rejects(B.responses.create({ model: 'tiny', previous_response_id: r.id, input: 'x', max_output_tokens: 2 }), (e) => e.status === 404);
  await assert.rejects(B.responses.delete(r.id), (e) => e.status === 404);
  assert.equal((await A.responses.retrieve(r.id)).id, r.id, 'still there');
  await A.responses.delete(r.id);
  await assert.rejects(A.responses.retrieve(r.id), (e) => e.status === 404);
  const n = await A.responses.create({ model: 'tiny', input: 'x', max_output_tokens: 2, store: false });
  assert.equal(n.store, false);
  await assert.rejects(A.responses.retrieve(n.id), (e) => e.status === 404);
});

test('bad requests are 400s naming the field', async () => {
  for (const [body, param] of [
    [{ model: 'tiny' }, 'input'],
    [{ model: 'tiny', input: [] }, 'input'],
    [{ model: 'tiny', input: [{ type: 'input_image', image_url: 'x' }] }, 'input[0].type'],
    [{ model: 'tiny', input: [{ role: 'user', content: [{ type: 'input_image' }] }] }, 'input[0].content[0].type'],
    [{ model: 'tiny', input: 'x', tools: [{ type: 'web_search' }] }, 'tools[0].type'],
    [{ model: 'tiny', input: 'x', tools: [{ type: { type: 'object' } }] }, 'tools[0].type'],
    [{ model: 'tiny', input: 'x', text: { format: { type: 7 } } }, 'text.format'],
    [{ model: 'tiny', input: 'x', max_output_tokens: 0 }, 'max_output_tokens'],
    [{ model: 'tiny', input: 'x', text: { format: { type: 'json_schema', name: 'x', schema: { type: 'object', properties: { a: { type: 'string', foo: 1 } } } } } }, 'response_format'],
  ]) {
    const r = await fetch(srv.url + '/v1/responses', { method: 'POST', headers: { Authorization: `Bearer ${alpha.api_key}`, 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    assert.equal(r.status, 400, JSON.stringify(body));
    const e = (await r.json()).error;
    assert.equal(e.param, param, JSON.stringify(e));
    assert.ok(e.message.length > 0);
  }
});

test('text.format json_schema: the output parses and matches', async () => {
  const schema = { type: 'object', properties: { answer: { type: 'string', enum: ['yes', 'no'] } }, required: ['answer'], additionalProperties: false };
  const r = await A.responses.create({ model: 'tiny', input: 'yes or no?', max_output_tokens: 80, temperature: 0, text: { format: { type: 'json_schema', name: 'yn', schema, strict: true } } });
  assert.equal(r.status, 'completed');
  assert.ok(['yes', 'no'].includes(JSON.parse(r.output_text).answer), r.output_text);
});

test('embeddings through the client: its base64 default decodes to the floats', async () => {
  const e = await A.embeddings.create({ model: 'tiny', input: ['first text', 'a second, longer text to embed'] });
  assert.equal(e.data.length, 2);
  const f = await (await fetch(srv.url + '/v1/embeddings', {
    method: 'POST', headers: { Authorization: `Bearer ${alpha.api_key}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ model: 'tiny', input: ['first text', 'a second, longer text to embed'], encoding_format: 'float' }),
  })).json();
  for (let i = 0; i < 2; ++i) {
    assert.equal(e.data[i].embedding.length, f.data[i].embedding.length);
    assert.deepEqual(e.data[i].embedding, f.data[i].embedding.map((x) => Math.fround(x)));
    const norm = Math.hypot(...f.data[i].embedding);
    assert.ok(Math.abs(norm - 1) < 1e-5);
  }
  assert.deepEqual(e.usage, f.usage);
  const d = await A.embeddings.create({ model: 'tiny', input: 'first text', dimensions: 8, encoding_format: 'float' });
  assert.equal(d.data[0].embedding.length, 8);
  // In the same batches as generation (streams decoding while the inputs run): bitwise the same.
  const streams = [0, 1, 2].map(() => A.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: LONG }], max_tokens: 40, ignore_eos: true, stream: true }));
  const its = await Promise.all(streams);
  const iters = its.map((it) => it[Symbol.asyncIterator]());
  for (let k = 0; k < 2; ++k) {  // the role chunk, then a token: they are decoding now
    const got = await Promise.all(iters.map((x) => x.next()));
    assert.ok(got.every((x) => !x.done));
  }
  const during = await A.embeddings.create({ model: 'tiny', input: ['first text', 'a second, longer text to embed'], encoding_format: 'float' });
  assert.deepEqual(during.data.map((x) => x.embedding), f.data.map((x) => x.embedding));
  for (const it of its) it.controller.abort();
});

test('both routes are metered in the ledger and limited by quotas', async () => {
  const recs = usageRecords();
  const resp = recs.filter((r) => r.request_id.startsWith('resp_'));
  const emb = recs.filter((r) => r.request_id.startsWith('embd-'));
  assert.ok(resp.length >= 10 && emb.length >= 2, `${resp.length} responses, ${emb.length} embeddings`);
  for (const r of resp) assert.ok(r.prompt_tokens > 0 && r.status === 'completed' && r.tenant === 'alpha', JSON.stringify(r));
  for (const r of emb) assert.ok(r.prompt_tokens > 0 && r.completion_tokens === 0 && r.status === 'completed', JSON.stringify(r));
  // A tenant over its monthly tokens is refused on both, with nothing run.
  const c = JSON.parse(corral('tenant', 'add', 'gamma', '--json'));
  corral('tenant', 'set', 'gamma', '--monthly-tokens', '5');
  const G = new OpenAI({ baseURL: srv.url + '/v1', apiKey: c.api_key, maxRetries: 0 });
  await assert.rejects(G.responses.create({ model: 'tiny', input: LONG, max_output_tokens: 5 }), (e) => e.status === 429 && e.code === 'insufficient_quota');
  await assert.rejects(G.embeddings.create({ model: 'tiny', input: LONG }), (e) => e.status === 429 && e.code === 'insufficient_quota');
  assert.equal(usageRecords().filter((r) => r.tenant === 'gamma' && r.status !== 'error').length, 0);
});
