// The web chat page: plain HTML + JS, no external resources.
#include "server/web_page.h"

namespace nibble {

const std::string& web_chat_page() {
  static const std::string page = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>nibble chat</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 0; display: flex; flex-direction: column; height: 100vh; }
  header { padding: .5em 1em; background: #222; color: #eee; display: flex; gap: 1em; align-items: center; }
  #log { flex: 1; overflow-y: auto; padding: 1em; }
  .msg { margin: .5em 0; white-space: pre-wrap; }
  .user { color: #03a; }
  .assistant { color: #111; }
  .thinking { color: #888; font-style: italic; }
  .error { color: #b00; }
  form { display: flex; gap: .5em; padding: .5em 1em; border-top: 1px solid #ccc; }
  #input { flex: 1; font-size: 1em; padding: .4em; }
</style>
</head>
<body>
<header><strong>nibble</strong>
  <label>model <select id="model"></select></label>
  <label><input type="checkbox" id="think"> think</label>
  <button id="clear" type="button">clear</button></header>
<div id="log"></div>
<form id="form"><input id="input" autocomplete="off" placeholder="Send a message">
  <button id="send">Send</button><button id="stop" type="button" disabled>Stop</button></form>
<script>
const log = document.getElementById('log');
const input = document.getElementById('input');
const modelSel = document.getElementById('model');
let history = [];
// ?q=TEXT sends TEXT at once; ?model=, ?think=1, ?num_predict=, ?temperature= preset the chat.
const params = new URLSearchParams(location.search);
const urlOptions = {};
for (const k of ['num_predict', 'temperature', 'seed', 'num_ctx']) {
  if (params.has(k) && !isNaN(Number(params.get(k)))) urlOptions[k] = Number(params.get(k));
}
let controller = null;
function add(cls, text) {
  const d = document.createElement('div');
  d.className = 'msg ' + cls;
  d.textContent = text;
  log.appendChild(d);
  log.scrollTop = log.scrollHeight;
  return d;
}
async function loadModels() {
  const r = await fetch('/api/tags');
  const j = await r.json();
  for (const m of j.models) {
    const o = document.createElement('option');
    o.value = o.textContent = m.name;
    modelSel.appendChild(o);
  }
  document.body.dataset.ready = '1';
}
document.getElementById('clear').onclick = () => { history = []; log.textContent = ''; };
document.getElementById('stop').onclick = () => { if (controller) controller.abort(); };
document.getElementById('form').onsubmit = async (ev) => {
  ev.preventDefault();
  const text = input.value.trim();
  if (!text || controller) return;
  input.value = '';
  add('user', text);
  history.push({role: 'user', content: text});
  const thinkEl = add('thinking', '');
  const out = add('assistant', '');
  controller = new AbortController();
  document.getElementById('stop').disabled = false;
  let answer = '';
  try {
    const r = await fetch('/api/chat', {method: 'POST', signal: controller.signal,
      headers: {'Content-Type': 'application/json'},
      body: JSON.stringify({model: modelSel.value, messages: history, options: urlOptions,
                            think: document.getElementById('think').checked, stream: true})});
    if (!r.ok) { const e = await r.json(); throw new Error(e.error || r.statusText); }
    const reader = r.body.getReader();
    const dec = new TextDecoder();
    let buf = '';
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buf += dec.decode(value, {stream: true});
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (!line) continue;
        const j = JSON.parse(line);
        if (j.error) throw new Error(j.error);
        if (j.message && j.message.thinking) thinkEl.textContent += j.message.thinking;
        if (j.message && j.message.content) { answer += j.message.content; out.textContent = answer; }
        if (j.done) out.dataset.done = j.done_reason;
      }
      log.scrollTop = log.scrollHeight;
    }
    history.push({role: 'assistant', content: answer});
  } catch (e) {
    if (e.name !== 'AbortError') add('error', 'Error: ' + e.message);
    history.pop();
  } finally {
    controller = null;
    document.getElementById('stop').disabled = true;
    out.dataset.finished = '1';
  }
};
loadModels().then(() => {
  if (params.has('model')) modelSel.value = params.get('model');
  if (params.get('think') === '1') document.getElementById('think').checked = true;
  if (params.has('q')) {
    input.value = params.get('q');
    document.getElementById('form').requestSubmit();
  }
}).catch(e => add('error', 'Error: ' + e.message));
</script>
</body>
</html>
)HTML";
  return page;
}

}  // namespace nibble
