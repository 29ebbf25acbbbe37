// Virtual keys with the official OpenAI Node SDK: apiKey set to a key made by `tiergate keys
// new` works on chat (whole and streamed), responses and models; a wrong key is the SDK's own
// AuthenticationError, a key over its rpm its RateLimitError with retry-after; no key in the
// gateway's log.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
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
let mock, gateway, base, key, slow;
let log = "";

function firstMatch(proc, stream, re, sink) {
  return new Promise((resolve, reject) => {
    let buf = "";
    proc[stream].on("data", (d) => {
      buf += d;
      if (sink) sink(d);
      const m = buf.match(re);
      if (m) resolve(m[1]);
    });
    proc.on("exit", (code) => reject(new Error(`exited ${code}: ${buf}`)));
  });
}

function newKey(name, ...args) {
  const out = execFileSync(bin, ["keys", "new", "--name", name, "--team", "sdk", ...args], { encoding: "utf8" });
  const nl = out.indexOf("\n");
  const [k, entry] = [out.slice(0, nl), out.slice(nl + 1)];
  assert.ok(k.startsWith("tg-") && !entry.includes(k));
  return [k, entry];
}

before(async () => {
  mock = spawn(python, [join(here, "..", "mock_upstream.py")]);
  const port = await firstMatch(mock, "stdout", /^(\d+)\n/);
  const up = `http://127.0.0.1:${port}/v1`;
  const dir = mkdtempSync(join(tmpdir(), "tiergate-node-keys-"));
  let entry, slowEntry;
  [key, entry] = newKey("node-user");
  [slow, slowEntry] = newKey("node-slow", "--rpm", "1");
  const keysFile = join(dir, "keys.yaml");
  writeFileSync(keysFile, entry + slowEntry);
  const policy = join(dir, "policy.yaml");
  writeFileSync(policy, `
upstreams:
  - { name: local, kind: openai, base_url: "${up}", key_required: false, model: qwen-mock }
tiers:
  - { name: primitive, upstreams: [local] }
  - { name: architecture, upstreams: [local] }
auth:
  keys_file: "${keysFile}"
`);
  gateway = spawn(bin, ["serve", "--policy", policy, "--listen", "127.0.0.1:0"]);
  base = await firstMatch(gateway, "stderr", /listening on (http:\/\/127\.0\.0\.1:\d+)/, (d) => (log += d));
});

after(async () => {
  for (const p of [gateway, mock]) {
    if (p && p.exitCode === null) {
      p.kill("SIGTERM");
      await once(p, "exit");
    }
  }
  assert.ok(log.includes("listening"), log);
  for (const k of [key, slow]) assert.ok(!log.includes(k), "a key reached the gateway's log");
});

const hi = { model: "primitive", messages: [{ role: "user", content: "hi" }] };

test("a virtual key works on chat, streams, responses and models", async () => {
  const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: key, maxRetries: 0 });
  const r = await client.chat.completions.create(hi);
  assert.ok(r.choices[0].message.content);
  let text = "";
  for await (const c of await client.chat.completions.create({ ...hi, stream: true })) {
    text += c.choices[0]?.delta?.content ?? "";
  }
  assert.ok(text);
  const resp = await client.responses.create({ model: "primitive", input: "hi" });
  assert.ok(resp.output_text);
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.ok(ids.includes("auto"), ids.join(","));
});

test("a wrong key is AuthenticationError, on models too", async () => {
  const bad = new OpenAI({ baseURL: `${base}/v1`, apiKey: "tg-not-a-key", maxRetries: 0 });
  await assert.rejects(bad.chat.completions.create(hi), (e) => {
    assert.ok(e instanceof OpenAI.AuthenticationError, String(e));
    assert.equal(e.status, 401);
    assert.equal(e.code, "invalid_api_key");
    assert.ok(!String(e.message).includes("tg-not-a-key"));
    return true;
  });
  await assert.rejects(bad.models.list(), OpenAI.AuthenticationError);
});

test("a key over its rpm is RateLimitError with retry-after", async () => {
  const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: slow, maxRetries: 0 });
  await client.chat.completions.create(hi);
  await assert.rejects(client.chat.completions.create(hi), (e) => {
    assert.ok(e instanceof OpenAI.RateLimitError, String(e));
    assert.equal(e.status, 429);
    const after = Number(e.headers.get("retry-after"));
    // A sliding one-minute window: the request counted now decays out within two minutes.
    assert.ok(after >= 1 && after <= 120, `retry-after ${after}`);
    return true;
  });
});
