// Structured output through the official OpenAI client against `corral serve`: every output of
// a constrained request (random weights, many seeds and temperatures, 16 concurrent streams)
// validates against its schema with Debian's python3-jsonschema, or ends with finish_reason
// "length"; greedy constrained output is the same alone or in a batch of 16; forced tool calls
// streamed and not; GBNF grammars; schema errors are 400s naming the keyword and its pointer,
// before any SSE byte.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, unlinkSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import OpenAI from 'openai';
import { startServer, tinyModel, BIN } from './server.mjs';

const PY = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
// [{schema, text}] -> [true|false]: json.loads(text) validates against schema (format checked).
function validate(items) {
  const script = `
import json, sys, jsonschema
out = []
for it in json.load(sys.stdin):
    try:
        inst = json.loads(it["text"])
    except Exception:
        out.append("not JSON"); continue
    cls = jsonschema.validators.validator_for(it["schema"], default=jsonschema.Draft202012Validator)
    errs = [e.message for e in cls(it["schema"], format_checker=jsonschema.FormatChecker()).iter_errors(inst)]
    out.append(errs[0] if errs else True)
print(json.dumps(out))`;
  return JSON.parse(execFileSync(PY, ['-c', script], { input: JSON.stringify(items) }).toString());
}

const SCHEMAS = [
  { type: 'object', properties: { name: { type: 'string', maxLength: 12 }, age: { type: 'integer', minimum: 0, maximum: 120 },
    email: { type: 'string', format: 'email' } }, required: ['name', 'age'], additionalProperties: false },
  { type: 'array', items: { enum: ['red', 'green', 'blue'] }, minItems: 1, maxItems: 4 },
  { type: 'object', properties: { id: { type: 'string', pattern: '^[A-Z]{3}-[0-9]{4}$' }, qty: { type: 'number', minimum: 0, maximum: 10 },
    tags: { type: 'array', items: { type: 'string', minLength: 1, maxLength: 5 } }, ok: { type: ['boolean', 'null'] } },
    required: ['id', 'qty', 'ok'] },
  { $defs: { node: { type: 'object', properties: { v: { type: 'integer' }, kids: { type: 'array', items: { $ref: '#/$defs/node' }, maxItems: 2 } },
    required: ['v'], additionalProperties: false } }, $ref: '#/$defs/node' },
];

let srv, client, srv4, client4;
// The server's step trace (CORRAL_TRACE_STEPS): kept under build/js-logs when the batch
// comparison fails, so a rare divergence can be read afterwards (which steps, which logits).
const logs = join(dirname(resolve(BIN)), 'js-logs');
const trace = join(logs, `structured-trace-${process.pid}.log`);
let keepTrace = false;
before(async () => {
  mkdirSync(logs, { recursive: true });
  srv = await startServer(['-m', `tiny=${tinyModel('q8_0')}`, '--parallel', '16'], { env: { CORRAL_TRACE_STEPS: trace } });
  client = new OpenAI({ baseURL: srv.url + '/v1', apiKey: 'x', maxRetries: 0 });
  // Llama 4's built-in rendering: pythonic tool calls.
  srv4 = await startServer(['-m', `tiny=${tinyModel('q8_0')}`, '--chat-template', 'llama4']);
  client4 = new OpenAI({ baseURL: srv4.url + '/v1', apiKey: 'x', maxRetries: 0 });
});
after(async () => {
  await srv.stop();
  await srv4.stop();
  if (!keepTrace && existsSync(trace)) unlinkSync(trace);
});

async function collect(params, c = client) {
  if (!params.stream) {
    const r = await c.chat.completions.create(params);
    return { text: r.choices[0].message.content ?? '', finish: r.choices[0].finish_reason, message: r.choices[0].message };
  }
  const s = await c.chat.completions.create(params);
  let text = '', finish = null;
  const calls = [];
  for await (const ch of s) {
    const c = ch.choices[0];
    if (!c) continue;
    text += c.delta?.content ?? '';
    for (const tc of c.delta?.tool_calls ?? []) {
      calls[tc.index] ??= { name: '', arguments: '' };
      calls[tc.index].name += tc.function?.name ?? '';
      calls[tc.index].arguments += tc.function?.arguments ?? '';
    }
    finish = c.finish_reason ?? finish;
  }
  return { text, finish, calls };
}

test('16 concurrent constrained streams (seeds, temperatures, streamed or not) all validate or end with length', async () => {
  const jobs = [];
  for (let i = 0; i < 32; ++i) {
    const schema = SCHEMAS[i % SCHEMAS.length];
    jobs.push(collect({
      model: 'tiny', messages: [{ role: 'user', content: `give json ${i}` }], max_tokens: 160,
      temperature: [0, 0.7, 1.0, 1.5][i % 4], seed: 100 + i, stream: i % 2 === 1,
      response_format: { type: 'json_schema', json_schema: { name: `s${i % SCHEMAS.length}`, schema, strict: true } },
    }).then((r) => ({ ...r, schema })));
  }
  const results = await Promise.all(jobs);
  const complete = results.filter((r) => r.finish === 'stop');
  for (const r of results) assert.ok(['stop', 'length'].includes(r.finish), r.finish);
  assert.ok(complete.length >= 8, `only ${complete.length} of 32 finished within max_tokens`);
  const verdicts = validate(complete.map((r) => ({ schema: r.schema, text: r.text })));
  verdicts.forEach((v, k) => assert.equal(v, true, `${JSON.stringify(complete[k].text)}: ${v}`));
});

test('json_object and GBNF grammars constrain chat and completions', async () => {
  const objs = await Promise.all([0, 1, 2, 3].map((i) => collect({ model: 'tiny', messages: [{ role: 'user', content: 'x' }],
    max_tokens: 120, temperature: 1, seed: i, response_format: { type: 'json_object' } })));
  for (const r of objs.filter((r) => r.finish === 'stop')) {
    const v = JSON.parse(r.text);
    assert.equal(typeof v, 'object');
    assert.ok(v !== null && !Array.isArray(v));
  }
  for (let seed = 0; seed < 4; ++seed) {
    const r = await client.completions.create({ model: 'tiny', prompt: 'Answer:', max_tokens: 20, seed, temperature: 1,
      grammar: 'root ::= ("yes" | "no") " " [0-9]{1,3}' });
    assert.match(r.choices[0].text, /^(yes|no) [0-9]{1,3}$/);
    assert.equal(r.choices[0].finish_reason, 'stop');
  }
});

test('greedy constrained output is the same alone and in a batch of 16', async () => {
  const params = (i) => ({ model: 'tiny', messages: [{ role: 'user', content: `record ${i % 4}` }], max_tokens: 80, temperature: 0,
    response_format: { type: 'json_schema', json_schema: { name: 's', schema: SCHEMAS[i % 2] } } });
  const alone = [];
  for (let i = 0; i < 4; ++i) alone.push((await collect(params(i))).text);
  const batch = await Promise.all(Array.from({ length: 16 }, (_, i) => collect({ ...params(i), stream: i % 3 === 0 })));
  if (batch.some((r, i) => r.text !== alone[i % 4])) keepTrace = true;
  batch.forEach((r, i) => assert.equal(r.text, alone[i % 4], `stream ${i} (the server's step trace: ${trace})`));
});

test('max_tokens reached inside a value gives finish_reason length', async () => {
  const r = await collect({ model: 'tiny', messages: [{ role: 'user', content: 'x' }], max_tokens: 3, temperature: 0,
    response_format: { type: 'json_schema', json_schema: { name: 's', schema: SCHEMAS[0] } } });
  assert.equal(r.finish, 'length');
});

test("forced tool calls in the model's format, streamed and not, validate against the parameters", async () => {
  const tools = [{ type: 'function', function: { name: 'get_weather', strict: true, parameters: SCHEMAS[0] } },
                 { type: 'function', function: { name: 'list_colors', parameters: { type: 'object', properties: { c: SCHEMAS[1] }, required: ['c'] } } }];
  let checked = 0;
  const choices = ['required', { type: 'function', function: { name: 'list_colors' } }];
  for (let i = 0; i < 8; ++i) {
    const tool_choice = choices[i % 2];
    for (const stream of [false, true]) {
      const r = await collect({ model: 'tiny', messages: [{ role: 'user', content: 'weather?' }], tools, tool_choice, stream,
        parallel_tool_calls: false, max_tokens: 300, temperature: 0.5, seed: 7 + i });
      if (r.finish === 'length') continue;
      assert.equal(r.finish, 'tool_calls');
      const calls = stream ? r.calls : r.message.tool_calls.map((c) => c.function);
      assert.equal(calls.length, 1);
      if (typeof tool_choice === 'object') assert.equal(calls[0].name, 'list_colors');
      const schema = tools.find((t) => t.function.name === calls[0].name).function.parameters;
      assert.deepEqual(validate([{ schema, text: calls[0].arguments }]), [true]);
      ++checked;
    }
  }
  assert.ok(checked >= 4, `only ${checked} calls completed`);
});

test("forced calls in Llama 4's pythonic format (True/False/None, keyword arguments) validate, streamed and not", async () => {
  const tools = [{ type: 'function', function: { name: 'get_weather', parameters: SCHEMAS[0] } },
                 { type: 'function', function: { name: 'flag', parameters: { type: 'object', properties: { on: { type: 'boolean' },
                   note: { type: ['string', 'null'], maxLength: 4 } }, required: ['on', 'note'] } } }];
  let checked = 0;
  for (let i = 0; i < 8; ++i) {
    for (const stream of [false, true]) {
      const tool_choice = i % 2 ? 'required' : { type: 'function', function: { name: 'flag' } };
      const r = await collect({ model: 'tiny', messages: [{ role: 'user', content: 'go' }], tools, tool_choice, stream,
        max_tokens: 200, temperature: 0.7, seed: 40 + i }, client4);
      if (r.finish === 'length') continue;
      assert.equal(r.finish, 'tool_calls', JSON.stringify(r));
      const calls = stream ? r.calls : r.message.tool_calls.map((c) => c.function);
      assert.equal(calls.length, 1);
      const schema = tools.find((t) => t.function.name === calls[0].name).function.parameters;
      assert.deepEqual(validate([{ schema, text: calls[0].arguments }]), [true], calls[0].arguments);
      ++checked;
    }
  }
  assert.ok(checked >= 4, `only ${checked} calls completed`);
});

test('strict tools under tool_choice "auto": text that is no call, or a call whose arguments validate', async () => {
  const tools = [{ type: 'function', function: { name: 'get_weather', strict: true, parameters: SCHEMAS[0] } }];
  let texts = 0;
  for (const [c, name] of [[client, 'llama3'], [client4, 'llama4']]) {
    for (let i = 0; i < 6; ++i) {
      const stream = i % 2 === 1;
      const r = await collect({ model: 'tiny', messages: [{ role: 'user', content: 'hello' }], tools, stream,
        max_tokens: 40, temperature: 1.0, seed: 70 + i }, c);
      const calls = stream ? r.calls : (r.message.tool_calls ?? []).map((x) => x.function);
      if (calls.length) {
        assert.equal(r.finish, 'tool_calls');
        assert.deepEqual(validate(calls.map((x) => ({ schema: SCHEMAS[0], text: x.arguments }))), calls.map(() => true));
      } else {
        // Not the start of a call (a JSON object or a pythonic list) unless it was cut short.
        if (r.finish !== 'length') assert.doesNotMatch(r.text, /^\s*[{[]/, `${name}: ${r.text}`);
        ++texts;
      }
    }
  }
  assert.ok(texts > 0);
});

test('schema and grammar errors are 400s naming the keyword and pointer, before any SSE byte', async () => {
  for (const stream of [false, true]) {
    const res = await fetch(srv.url + '/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny', stream, messages: [{ role: 'user', content: 'x' }], response_format: { type: 'json_schema',
        json_schema: { name: 's', schema: { type: 'object', properties: { a: { type: 'array', uniqueItems: true } } } } } }) });
    assert.equal(res.status, 400);
    assert.match(res.headers.get('content-type'), /application\/json/);
    const e = (await res.json()).error;
    assert.equal(e.param, 'response_format');
    assert.match(e.message, /'uniqueItems' at \/properties\/a\/uniqueItems/);
  }
  await assert.rejects(client.completions.create({ model: 'tiny', prompt: 'x', grammar: 'root ::= "a" (' }),
    (e) => e.status === 400 && e.param === 'grammar' && /line 1 column/.test(e.message));
  await assert.rejects(client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'x' }],
    response_format: { type: 'json_schema', json_schema: { schema: {} } } }),
  (e) => e.status === 400 && e.param === 'response_format.json_schema.name');
  await assert.rejects(client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'x' }],
    response_format: { type: 'xml' } }), (e) => e.status === 400 && e.param === 'response_format.type');
});
