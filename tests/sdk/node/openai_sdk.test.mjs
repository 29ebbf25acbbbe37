// The official OpenAI Node SDK against the running tiergate binary, with the Python mock upstream.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { once } from "node:events";
import OpenAI from "openai";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..", "..");
const bin = process.env.TIERGATE_BIN ?? join(root, "target", "debug", "tiergate");
const python = process.env.PYTHON ?? "python3";
let mock, gateway, client;

// Resolves with the first line the process prints that matches `re`.
function firstMatch(proc, stream, re) {
  return new Promise((resolve, reject) => {
    let buf = "";
    proc[stream].on("data", (d) => {
      buf += d;
      const m = buf.match(re);
      if (m) resolve(m[1]);
    });
    proc.on("exit", (code) => reject(new Error(`exited ${code}: ${buf}`)));
  });
}

before(async () => {
  mock = spawn(python, [join(here, "..", "mock_upstream.py")]);
  const port = await firstMatch(mock, "stdout", /^(\d+)\n/);
  const up = `http://127.0.0.1:${port}/v1`;
  const dir = mkdtempSync(join(tmpdir(), "tiergate-node-"));
  const policy = join(dir, "policy.yaml");
  writeFileSync(policy, `
upstreams:
  - { name: local, kind: openai, base_url: "${up}", key_required: false, model: qwen-mock }
  - { name: frontier, kind: openai, base_url: "${up}", api_key: sk-up, model: frontier-mock }
tiers:
  - { name: primitive, upstreams: [local, frontier] }
  - { name: architecture, upstreams: [frontier] }
`);
  gateway = spawn(bin, ["serve", "--policy", policy, "--listen", "127.0.0.1:0"]);
  const base = await firstMatch(gateway, "stderr", /listening on (http:\/\/127\.0\.0\.1:\d+)/);
  client = new OpenAI({ baseURL: `${base}/v1`, apiKey: "sk-client", maxRetries: 0 });
});

after(async () => {
  for (const p of [gateway, mock]) {
    if (p && p.exitCode === null) {
      p.kill("SIGTERM");
      await once(p, "exit");
    }
  }
});

const weather = {
  type: "function",
  function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } },
};

test("models list", async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.deepEqual(ids, ["auto", "primitive", "architecture", "local", "frontier"]);
});

test("chat with tiergate headers", async () => {
  const { data, response } = await client.chat.completions
    .create({ model: "auto", messages: [{ role: "user", content: "Write a regex that matches ISO dates." }] })
    .withResponse();
  assert.equal(response.headers.get("x-tiergate-tier"), "primitive");
  assert.equal(data.choices[0].message.content, "Hello from qwen-mock");
  assert.equal(data.usage.total_tokens, 15);
});

test("streaming, with and without usage", async () => {
  let text = "";
  let sawUsage = false;
  for await (const c of await client.chat.completions.create({ model: "primitive", stream: true, messages: [{ role: "user", content: "hi" }] })) {
    text += c.choices[0]?.delta?.content ?? "";
    sawUsage ||= !!c.usage;
  }
  assert.equal(text, "Hello from qwen-mock");
  assert.equal(sawUsage, false);
  let last;
  for await (const c of await client.chat.completions.create({
    model: "primitive", stream: true, stream_options: { include_usage: true }, messages: [{ role: "user", content: "hi" }],
  })) last = c;
  assert.equal(last.usage.total_tokens, 15);
});

test("tool calls, streamed and not", async () => {
  const done = await client.chat.completions.create({ model: "primitive", tools: [weather], messages: [{ role: "user", content: "Paris?" }] });
  assert.equal(done.choices[0].finish_reason, "tool_calls");
  assert.deepEqual(JSON.parse(done.choices[0].message.tool_calls[0].function.arguments), { city: "Paris" });
  const runner = client.chat.completions.stream({ model: "primitive", tools: [weather], messages: [{ role: "user", content: "Paris?" }] });
  const final = await runner.finalChatCompletion();
  const call = final.choices[0].message.tool_calls[0];
  assert.equal(call.function.name, "get_weather");
  assert.deepEqual(JSON.parse(call.function.arguments), { city: "Paris" });
});

test("unknown model is a NotFoundError", async () => {
  await assert.rejects(
    client.chat.completions.create({ model: "gpt-nope", messages: [{ role: "user", content: "x" }] }),
    (e) => e instanceof OpenAI.NotFoundError && e.code === "model_not_found",
  );
});
