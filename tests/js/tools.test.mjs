// Chat templates and tool calling through the official OpenAI client against `corral serve`: the
// model's own Jinja template renders tools, tool calls and results (seen through /tokenize and
// /detokenize), chat_template_kwargs and --now reach it, its raise_exception is a 400, forced
// tool_choice forces a call, and a tools conversation runs end to end,
// streamed and not. Random weights cannot be steered into a call here; the parsers are tested
// on recorded outputs in tests/template_test.cpp.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { startServer, tinyModel } from './server.mjs';

// A template in Llama 3.1's shape: system header with the dates, tools in the first user
// message, assistant calls as JSON, results under ipython; several calls in one turn raise.
const TEMPLATE = `{{- bos_token }}
{%- if not date_string is defined %}{%- set date_string = strftime_now("%d %b %Y") %}{%- endif %}
{%- set tools_in_user_message = tools_in_user_message if tools_in_user_message is defined else true %}
{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content']|trim %}{%- set messages = messages[1:] %}{%- else %}{%- set system_message = "" %}{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{{- "Cutting Knowledge Date: December 2023\\n" }}
{{- "Today Date: " + date_string + "\\n\\n" }}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- for message in messages %}
  {%- if message.role == 'user' and loop.first and tools is not none and tools_in_user_message %}
    {{- '<|start_header_id|>user<|end_header_id|>\\n\\n' }}
    {%- for t in tools %}{{- t | tojson(indent=4) }}{{- "\\n\\n" }}{%- endfor %}
    {{- message['content']|trim + '<|eot_id|>' }}
  {%- elif message.tool_calls is defined and message.tool_calls %}
    {%- if message.tool_calls|length != 1 %}{{- raise_exception("This model only supports single tool-calls at once!") }}{%- endif %}
    {%- set tool_call = message.tool_calls[0].function %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
    {{- '{"name": "' + tool_call.name + '", "parameters": ' }}{{- tool_call.arguments | tojson }}{{- "}" }}{{- "<|eot_id|>" }}
  {%- elif message.role == 'tool' %}
    {{- "<|start_header_id|>ipython<|end_header_id|>\\n\\n" }}{{- message.content }}{{- "<|eot_id|>" }}
  {%- else %}
    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}
  {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}
`;

const KEY = 'tools-key-123';
const WEATHER = {
  type: 'function',
  function: {
    name: 'get_weather', description: 'Current weather',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
};
let srv, client;

before(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'corral-tpl-'));
  const tpl = join(dir, 'llama31-like.jinja');
  writeFileSync(tpl, TEMPLATE);
  srv = await startServer(['-m', `tiny=${tinyModel('q8_0')}`, '--api-key', KEY, '--chat-template', tpl,
    '--now', '2024-09-15', '--parallel', '4']);
  client = new OpenAI({ baseURL: srv.url + '/v1', apiKey: KEY, maxRetries: 0 });
});
after(async () => { assert.equal((await srv.stop()).code, 0); });

const post = (path, body) => fetch(srv.url + path, {
  method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${KEY}` },
  body: JSON.stringify(body),
});
// The prompt text the server renders for a chat (what the model is given).
async function rendered(body) {
  const t = await (await post('/tokenize', body)).json();
  assert.ok(Array.isArray(t.tokens), JSON.stringify(t));
  const d = await (await post('/detokenize', { tokens: t.tokens })).json();
  return { text: d.content ?? d.prompt, count: t.count, tokens: t.tokens };
}

test('the log names the template in use and its tool-call format', () => {
  assert.ok(srv.lines.some((l) => /chat template .*llama31-like\.jinja, tool calls llama3/.test(l)), srv.lines.join('\n'));
});

test('tools are rendered by the template, with --now as its date and BOS once', async () => {
  const r = await rendered({ messages: [{ role: 'user', content: 'Weather in Rome?' }], tools: [WEATHER] });
  assert.ok(r.text.startsWith('<|begin_of_text|><|start_header_id|>system'), r.text);
  assert.equal(r.tokens.filter((t) => t === 128000).length, 1, 'exactly one BOS');
  assert.match(r.text, /Cutting Knowledge Date: December 2023\nToday Date: 15 Sep 2024/);
  assert.ok(r.text.includes('"name": "get_weather"') && r.text.includes('    "type": "function"'), r.text);
  const plain = await rendered({ messages: [{ role: 'user', content: 'Weather in Rome?' }] });
  assert.ok(r.count > plain.count + 20, 'the tools take room in the prompt');
  const kw = await rendered({ messages: [{ role: 'user', content: 'x' }], chat_template_kwargs: { date_string: '01 Jan 2025' } });
  assert.match(kw.text, /Today Date: 01 Jan 2025/);
});

test('tool calls in history: string arguments are parsed, not encoded twice; content null and parts work', async () => {
  const r = await rendered({
    messages: [
      { role: 'user', content: [{ type: 'text', text: 'Weather ' }, { type: 'text', text: 'in Rome?' }] },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city": "Rome"}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: '{"temperature": 21}' },
    ],
    tools: [WEATHER],
  });
  assert.ok(r.text.includes('{"name": "get_weather", "parameters": {"city": "Rome"}}'), r.text);
  assert.ok(!r.text.includes('\\"city\\"'), 'not double-encoded');
  assert.ok(r.text.includes('Weather in Rome?<|eot_id|>'), r.text);
  assert.ok(r.text.includes('<|start_header_id|>ipython<|end_header_id|>\n\n{"temperature": 21}<|eot_id|>'), r.text);
});

test("the template's raise_exception is a 400 with its message", async () => {
  const call = (id) => ({ id, type: 'function', function: { name: 'get_weather', arguments: '{"city": "Rome"}' } });
  await assert.rejects(
    client.chat.completions.create({
      model: 'tiny', max_tokens: 4, tools: [WEATHER],
      messages: [{ role: 'user', content: 'Two?' }, { role: 'assistant', content: null, tool_calls: [call('a'), call('b')] },
        { role: 'tool', tool_call_id: 'a', content: '1' }, { role: 'tool', tool_call_id: 'b', content: '2' }],
    }),
    (e) => e.status === 400 && /only supports single tool-calls/.test(e.message) && e.param === 'messages',
  );
});

test('tool_choice "required" and a named function force a call to a tool the request names', async () => {
  for (const tool_choice of ['required', { type: 'function', function: { name: 'get_weather' } }]) {
    const r = await client.chat.completions.create({ model: 'tiny', max_tokens: 60, tools: [WEATHER], tool_choice, messages: [{ role: 'user', content: 'x' }] });
    const ch = r.choices[0];
    if (ch.finish_reason === 'length') continue;  // random weights may fill max_tokens with whitespace
    assert.equal(ch.finish_reason, 'tool_calls');
    assert.equal(ch.message.tool_calls.length, 1);
    assert.equal(ch.message.tool_calls[0].function.name, 'get_weather');
    assert.equal(typeof JSON.parse(ch.message.tool_calls[0].function.arguments).city, 'string');
  }
  await assert.rejects(
    client.chat.completions.create({ model: 'tiny', max_tokens: 4, tools: [WEATHER], tool_choice: { type: 'function', function: { name: 'nope' } }, messages: [{ role: 'user', content: 'x' }] }),
    (e) => e.status === 400 && e.param === 'tool_choice' && /nope/.test(e.message),
  );
  await assert.rejects(
    client.chat.completions.create({ model: 'tiny', max_tokens: 4, tools: [{ type: 'function', function: {} }], messages: [{ role: 'user', content: 'x' }] }),
    (e) => e.status === 400 && e.param === 'tools[0].function.name',
  );
});

test('a tools conversation end to end: request, tool result sent back, final answer; streamed equals not', async () => {
  const messages = [{ role: 'user', content: 'What is the weather in Rome?' }];
  const first = await client.chat.completions.create({ model: 'tiny', messages, tools: [WEATHER], max_tokens: 12, temperature: 0 });
  const m = first.choices[0].message;
  assert.equal(m.role, 'assistant');
  assert.ok(['stop', 'length', 'tool_calls'].includes(first.choices[0].finish_reason));
  const tok = await rendered({ messages, tools: [WEATHER] });
  assert.equal(first.usage.prompt_tokens, tok.count, 'the template\'s tokens are metered as prompt tokens');
  // Streamed, the same greedy answer: content deltas concatenate to the same message.
  const stream = await client.chat.completions.create({ model: 'tiny', messages, tools: [WEATHER], max_tokens: 12, temperature: 0, stream: true });
  let content = '', role = null, finish = null;
  const calls = [];
  for await (const chunk of stream) {
    const d = chunk.choices[0]?.delta ?? {};
    if (d.role) role = d.role;
    if (d.content) content += d.content;
    for (const tc of d.tool_calls ?? []) {
      calls[tc.index] ??= { id: tc.id, name: tc.function?.name, arguments: '' };
      calls[tc.index].arguments += tc.function?.arguments ?? '';
    }
    if (chunk.choices[0]?.finish_reason) finish = chunk.choices[0].finish_reason;
  }
  assert.equal(role, 'assistant');
  assert.equal(finish, first.choices[0].finish_reason);
  assert.equal(content, m.content ?? '');
  assert.deepEqual(calls.map((c) => [c.name, c.arguments]), (m.tool_calls ?? []).map((c) => [c.function.name, c.function.arguments]));
  // The tool result goes back (as an agent would after a call) and the model answers.
  const followUp = await client.chat.completions.create({
    model: 'tiny', max_tokens: 8, temperature: 0, tools: [WEATHER],
    messages: [...messages,
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_x', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Rome"}' } }] },
      { role: 'tool', tool_call_id: 'call_x', content: 'sunny, 21 C' }],
  });
  assert.equal(followUp.choices[0].message.role, 'assistant');
  assert.ok(followUp.usage.prompt_tokens > first.usage.prompt_tokens);
  // tool_choice "none": tools still rendered, output never parsed.
  const none = await client.chat.completions.create({ model: 'tiny', messages, tools: [WEATHER], tool_choice: 'none', max_tokens: 12, temperature: 0 });
  assert.equal(none.choices[0].message.tool_calls, undefined);
  assert.notEqual(none.choices[0].finish_reason, 'tool_calls');
});
