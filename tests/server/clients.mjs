// The official `ollama` and `openai` JavaScript clients against a running `nibble serve`.
// Usage: node clients.mjs BASE_URL NIBBLE_BINARY
// Greedy decoding makes every path comparable: a streamed reply must equal the non-streamed one,
// the Ollama and OpenAI chat endpoints must agree, and /v1/completions must equal
// `nibble run --temp 0` (a separate code path: the CLI's own generation loop).
import { execFileSync } from 'node:child_process';
import assert from 'node:assert/strict';
import { Ollama } from 'ollama';
import OpenAI from 'openai';

const [base, nibble] = process.argv.slice(2);
const model = 'nibble-tiny-e';
const ollama = new Ollama({ host: base });
const openai = new OpenAI({ baseURL: base + '/v1', apiKey: 'unused', maxRetries: 0 });
const messages = [{ role: 'user', content: 'The old prince' }];
const N = 12;
let failures = 0;

async function check(name, fn) {
  try {
    await fn();
    console.log('ok   ' + name);
  } catch (e) {
    failures++;
    console.log('FAIL ' + name + ': ' + (e && e.stack ? e.stack : e));
  }
}

let ollamaText = '';
await check('ollama chat, not streamed', async () => {
  const r = await ollama.chat({ model, messages, stream: false, options: { temperature: 0, num_predict: N } });
  assert.equal(r.done, true);
  assert.equal(r.message.role, 'assistant');
  assert.ok(r.message.content.length > 0, 'empty reply');
  assert.ok(r.eval_count > 0 && r.eval_count <= N, 'eval_count ' + r.eval_count);
  assert.ok(r.prompt_eval_count > 0);
  ollamaText = r.message.content;
});

await check('ollama chat, streamed = not streamed', async () => {
  const stream = await ollama.chat({ model, messages, stream: true, options: { temperature: 0, num_predict: N } });
  let text = '', parts = 0, last = null;
  for await (const part of stream) {
    text += part.message.content;
    parts++;
    last = part;
  }
  assert.ok(parts >= 2, 'only ' + parts + ' parts');
  assert.equal(last.done, true);
  assert.ok(['stop', 'length'].includes(last.done_reason), last.done_reason);
  assert.equal(text, ollamaText);
});

await check('ollama generate, streamed and not', async () => {
  const r = await ollama.generate({ model, prompt: 'The old prince', stream: false, options: { temperature: 0, num_predict: N } });
  assert.equal(r.done, true);
  let text = '';
  for await (const part of await ollama.generate({ model, prompt: 'The old prince', stream: true, options: { temperature: 0, num_predict: N } })) {
    text += part.response;
  }
  assert.equal(text, r.response);
  assert.equal(r.response, ollamaText, 'generate and chat render the same one-turn prompt');
});

await check('ollama list, show, ps, version', async () => {
  const l = await ollama.list();
  assert.ok(l.models.some((m) => m.name === 'nibble-tiny-e:latest'), JSON.stringify(l));
  const s = await ollama.show({ model });
  assert.equal(s.details.family, 'gemma4');
  assert.ok(s.template.includes('<|turn>'));
  const p = await ollama.ps();
  assert.equal(p.models.length, 1);
  assert.equal(p.models[0].name, 'nibble-tiny-e:latest');
  const v = await ollama.version();
  assert.ok(v.version);
});

await check('ollama errors: unknown model is a 404 ResponseError', async () => {
  await assert.rejects(ollama.chat({ model: 'no-such-model', messages }), (e) => {
    assert.equal(e.status_code, 404);
    assert.match(e.error, /not found/);
    return true;
  });
});

await check('ollama abort mid-stream, then the server still answers', async () => {
  const client = new Ollama({ host: base });
  const stream = await client.chat({ model, messages, stream: true, options: { num_predict: 400 } });
  let n = 0;
  try {
    for await (const part of stream) {
      if (++n === 3) stream.abort();
    }
  } catch (e) {
    assert.equal(e.name, 'AbortError');
  }
  const r = await ollama.chat({ model, messages, stream: false, options: { temperature: 0, num_predict: N } });
  assert.equal(r.message.content, ollamaText);
});

await check('openai chat.completions, not streamed = ollama', async () => {
  const r = await openai.chat.completions.create({ model, messages, temperature: 0, max_tokens: N });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(r.choices[0].message.content, ollamaText);
  assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
});

await check('openai chat.completions, streamed = not streamed', async () => {
  const stream = await openai.chat.completions.create({ model, messages, temperature: 0, max_tokens: N, stream: true, stream_options: { include_usage: true } });
  let text = '', finish = null, usage = null, chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      text += c.delta.content ?? '';
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.ok(chunks >= 3, 'only ' + chunks + ' chunks');
  assert.equal(text, ollamaText);
  assert.ok(['stop', 'length'].includes(finish));
  assert.ok(usage && usage.completion_tokens > 0);
});

await check('openai completions = nibble run --temp 0', async () => {
  const r = await openai.completions.create({ model, prompt: 'The old prince', temperature: 0, max_tokens: 8 });
  const cli = execFileSync(nibble, ['run', '--temp', '0', '-n', '8', '-q', 'The old prince'], { encoding: 'utf8' });
  assert.equal(r.choices[0].text, cli.replace(/\n$/, ''));
  let text = '';
  for await (const c of await openai.completions.create({ model, prompt: 'The old prince', temperature: 0, max_tokens: 8, stream: true })) {
    text += c.choices[0]?.text ?? '';
  }
  assert.equal(text, r.choices[0].text);
});

await check('openai models.list and errors', async () => {
  const ids = [];
  for await (const m of openai.models.list()) ids.push(m.id);
  assert.ok(ids.includes('nibble-tiny-e:latest'), ids.join(','));
  await assert.rejects(openai.chat.completions.create({ model: 'no-such-model', messages }), (e) => {
    assert.equal(e.status, 404);
    return true;
  });
  await assert.rejects(openai.chat.completions.create({ model, messages: [], max_tokens: 2 }), (e) => {
    assert.equal(e.status, 400);
    return true;
  });
});

console.log(failures === 0 ? 'all client checks passed' : failures + ' client check(s) failed');
process.exit(failures === 0 ? 0 : 1);
