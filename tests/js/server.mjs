// Starts `corral serve` for a test on a free port and stops it by its PID afterwards.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const BIN = process.env.CORRAL_BIN ?? 'build/corral';

let modelCache = new Map();
// A small random-weight model with the real Llama 3 tokenizer (made once per test process).
export function tinyModel(type = 'q4_0', shape = 'tiny') {
  const key = `${shape}-${type}`;
  if (!modelCache.has(key)) {
    const dir = mkdtempSync(join(tmpdir(), 'corral-js-'));
    const out = join(dir, `${key}.gguf`);
    execFileSync(BIN, ['synth', '--shape', shape, '--type', type, '--seed', '5', out], { stdio: 'ignore' });
    modelCache.set(key, out);
  }
  return modelCache.get(key);
}

export async function startServer(args, { env } = {}) {
  // Without --ledger a server would open ./corral-ledger.db: give each one its own, empty one.
  const ledger = args.includes('--ledger') ? [] : ['--ledger', `sqlite:${join(mkdtempSync(join(tmpdir(), 'corral-srv-')), 'ledger.db')}`];
  const proc = spawn(BIN, ['serve', '--port', '0', ...ledger, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
  const lines = [];
  let buf = '';
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('server did not start: ' + lines.join('\n'))), 60000);
    proc.stderr.on('data', (d) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        lines.push(line);
        const m = line.match(/listening on http:\/\/[^:]+:(\d+)/);
        if (m) { clearTimeout(timer); resolve(Number(m[1])); }
      }
    });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited ${code}: ${lines.join('\n')}`)); });
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; ++i) {
    try { if ((await fetch(url + '/health')).status === 200) break; } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  const exited = new Promise((resolve) => proc.on('exit', (code, sig) => resolve({ code, sig })));
  return {
    url, port, proc, lines, exited,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return exited;
      process.kill(proc.pid, 'SIGTERM');
      const t = setTimeout(() => { try { process.kill(proc.pid, 'SIGKILL'); } catch {} }, 20000);
      const r = await exited;
      clearTimeout(t);
      return r;
    },
  };
}

// Reads an SSE response body into its data payloads (strings, '[DONE]' included).
export async function sseEvents(res) {
  const text = await res.text();
  const events = [];
  for (const block of text.split('\n\n')) {
    if (!block.trim()) continue;
    for (const line of block.split('\n')) if (line.startsWith('data: ')) events.push(line.slice(6));
  }
  return events;
}

export async function metric(url, name, key) {
  const res = await fetch(url + '/metrics', { headers: key ? { Authorization: `Bearer ${key}` } : {} });
  const text = await res.text();
  let total = 0, found = false;
  for (const line of text.split('\n')) {
    if (line.startsWith(name + '{') || line.startsWith(name + ' ')) { total += Number(line.split(' ').pop()); found = true; }
  }
  return found ? total : undefined;
}
