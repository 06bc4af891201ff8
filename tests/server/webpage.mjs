// The built-in web chat page in headless Chromium (Debian's `chromium`), over the DevTools
// protocol: the page loads the model list, sends a message typed into its form, and shows the
// streamed reply, which must equal the same request made directly to /api/chat.
// Usage: node --experimental-websocket webpage.mjs BASE_URL CHROMIUM
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [base, chromium] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), 'nibble-chromium-'));
const browser = spawn(chromium, ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
  '--no-first-run', '--remote-debugging-port=0', '--user-data-dir=' + profile, base + '/?num_predict=8&temperature=0'],
  { stdio: ['ignore', 'ignore', 'pipe'] });
let finishing = false;
// Stops chromium, waits for it to exit (it writes to its profile until then), removes the profile.
const finish = async (code, msg) => {
  if (finishing) return;
  finishing = true;
  console.log(msg);
  if (browser.exitCode === null) {
    const exited = new Promise((r) => browser.once('exit', r));
    browser.kill('SIGKILL');
    await exited;
  }
  try {
    rmSync(profile, { recursive: true, force: true, maxRetries: 5 });
  } catch (e) {
    console.log('note: could not remove ' + profile + ': ' + e.message);
  }
  process.exit(code);
};
const fail = (msg) => finish(1, 'FAIL ' + msg);
setTimeout(() => fail('timed out'), 60000).unref();

// "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/..."
const port = await new Promise((resolve) => {
  let err = '';
  browser.stderr.on('data', (d) => {
    err += d;
    const m = err.match(/DevTools listening on ws:\/\/[^:]+:(\d+)\//);
    if (m) resolve(m[1]);
  });
  browser.on('exit', () => { if (!finishing) fail('chromium exited: ' + err.slice(0, 500)); });
});
let page = null;
for (let i = 0; i < 100 && !page; i++) {
  const list = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
  page = list.find((t) => t.type === 'page' && t.url.startsWith(base));
  if (!page) await new Promise((r) => setTimeout(r, 100));
}
if (!page) await fail('no page target');
const ws = new WebSocket(page.webSocketDebuggerUrl);
await new Promise((r) => ws.addEventListener('open', r));
let seq = 0;
const pending = new Map();
ws.addEventListener('message', (ev) => {
  const m = JSON.parse(ev.data);
  if (m.id && pending.has(m.id)) pending.get(m.id)(m);
});
const evaluate = (expression) => new Promise((resolve) => {
  const id = ++seq;
  pending.set(id, (m) => resolve(m.result && m.result.result ? m.result.result.value : undefined));
  ws.send(JSON.stringify({ id, method: 'Runtime.evaluate', params: { expression, awaitPromise: true, returnByValue: true } }));
});
const waitFor = async (expression, what) => {
  for (let i = 0; i < 300; i++) {
    if (await evaluate(expression)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  await fail('waiting for ' + what);
};

await waitFor(`document.body && document.body.dataset.ready === '1'`, 'the model list');
const models = await evaluate(`[...document.querySelectorAll('#model option')].map(o => o.value)`);
if (!models.includes('nibble-tiny-e:latest')) await fail('model list: ' + JSON.stringify(models));
// Type into the form and press Send, as a person would.
await evaluate(`(() => {
  document.getElementById('input').value = 'The old prince';
  document.getElementById('send').click();
  return true; })()`);
await waitFor(`(() => { const a = document.querySelector('.msg.assistant'); return a && a.dataset.finished === '1'; })()`, 'the reply');
const shown = await evaluate(`document.querySelector('.msg.assistant').textContent`);
const errors = await evaluate(`[...document.querySelectorAll('.msg.error')].map(e => e.textContent)`);
if (errors.length) await fail('page errors: ' + errors.join('; '));
const direct = await (await fetch(base + '/api/chat', { method: 'POST', body: JSON.stringify({
  model: 'nibble-tiny-e:latest', messages: [{ role: 'user', content: 'The old prince' }], stream: false,
  options: { num_predict: 8, temperature: 0 } }) })).json();
if (shown !== direct.message.content) await fail(`page shows ${JSON.stringify(shown)}, /api/chat says ${JSON.stringify(direct.message.content)}`);
ws.close();
await finish(0, 'ok   web page chat: ' + JSON.stringify(shown));
