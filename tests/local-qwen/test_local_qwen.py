"""End to end: the official OpenAI Python SDK -> the tiergate binary -> a real local Qwen
(llama.cpp's server with Qwen2.5-Coder-0.5B, started by deploy/local-qwen/start.sh) and a
scripted frontier upstream. Run by e2e.sh, which starts the model and sets LOCAL_QWEN_URL.

Bounded: a few short answers (max_tokens <= 48) at temperature 0.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

import openai
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "sdk"))
import mock_upstream  # noqa: E402

BIN = os.environ.get("TIERGATE_BIN", os.path.join(ROOT, "target", "debug", "tiergate"))
LOCAL_URL = os.environ.get("LOCAL_QWEN_URL")
LOCAL_MODEL = os.environ.get("LOCAL_QWEN_MODEL", "qwen2.5-coder-0.5b")

POLICY = """
upstreams:
  - name: local
    kind: openai
    base_url: {local}
    key_required: false
    model: {model}
    repair: true
    escalate_unrepaired_tool_calls: true
    timeouts: {{ connect: 2s, first_byte: 120s, total: 300s }}
  - name: frontier
    kind: openai
    base_url: {frontier}
    api_key: sk-upstream-frontier
    model: frontier-mock
    price: {{ input_per_mtok: 3, output_per_mtok: 15 }}
tiers:
  - name: primitive
    upstreams: [local, frontier]
  - name: architecture
    upstreams: [frontier]
reference_upstream: frontier
"""

WEATHER = [{"type": "function", "function": {
    "name": "get_weather", "description": "Get current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name"}},
                   "required": ["city"]}}}]
WEATHER_PROMPT = [{"role": "user", "content": "What is the weather in Paris right now? Use the tool."}]

FIGURES = []


@pytest.fixture(scope="module")
def gw():
    assert LOCAL_URL, "LOCAL_QWEN_URL is not set: run tests/local-qwen/e2e.sh"
    frontier = mock_upstream.start()
    d = tempfile.mkdtemp(prefix="tiergate-local-qwen-")
    policy = os.path.join(d, "policy.yaml")
    with open(policy, "w") as f:
        f.write(POLICY.format(local=LOCAL_URL, model=LOCAL_MODEL,
                              frontier=f"http://127.0.0.1:{frontier.server_address[1]}/v1"))
    log = open(os.path.join(d, "gateway.log"), "w+")
    proc = subprocess.Popen([BIN, "serve", "--policy", policy, "--listen", "127.0.0.1:0"], stdout=log, stderr=log)
    base = None
    deadline = time.time() + 20
    while base is None and time.time() < deadline and proc.poll() is None:
        log.seek(0)
        m = re.search(r"listening on (http://127\.0\.0\.1:\d+)", log.read())
        base = m.group(1) if m else None
        time.sleep(0.05)
    log.seek(0)
    if not base:
        proc.kill()
        frontier.shutdown()
    assert base, "tiergate did not start:\n" + log.read()
    try:
        yield base
    finally:
        proc.terminate()
        proc.wait(10)
        frontier.shutdown()
    print("\n".join(["", "figures:"] + FIGURES))


def client(base):
    return openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=300)


def metric(base, name_and_labels):
    text = urllib.request.urlopen(base + "/metrics").read().decode()
    for line in text.splitlines():
        if line.startswith(name_and_labels + " "):
            return float(line.split()[-1])
    return 0.0


def test_primitive_prompt_is_answered_by_the_real_model(gw):
    before = metric(gw, 'tiergate_output_tokens_total{source="reported",tier="primitive",upstream="local"}')
    t = time.time()
    raw = client(gw).chat.completions.with_raw_response.create(
        model="auto", max_tokens=48, temperature=0,
        messages=[{"role": "user", "content": "Write a function that reverses a string in Python."}])
    took = time.time() - t
    r = raw.parse()
    assert raw.headers["x-tiergate-tier"] == "primitive"
    assert raw.headers["x-tiergate-upstream"] == "local"
    assert r.choices[0].message.content.strip(), r
    assert r.model == LOCAL_MODEL
    assert r.usage.completion_tokens > 0 and r.usage.prompt_tokens > 0
    after = metric(gw, 'tiergate_output_tokens_total{source="reported",tier="primitive",upstream="local"}')
    assert after - before == r.usage.completion_tokens
    FIGURES.append(f"  primitive, whole: {r.usage.completion_tokens} tokens in {took:.2f} s "
                   f"({r.usage.completion_tokens / took:.1f} tokens/s end to end)")


def test_stream_with_usage(gw):
    t = time.time()
    raw = client(gw).chat.completions.with_raw_response.create(
        model="primitive", max_tokens=32, temperature=0, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Write a regex that matches an ISO date."}])
    assert raw.headers["x-tiergate-upstream"] == "local"
    chunks, first = [], None
    for c in raw.parse():
        if first is None and c.choices and c.choices[0].delta.content:
            first = time.time() - t
        chunks.append(c)
    took = time.time() - t
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == "", "first delta: content '' (llama.cpp sends null)"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert all(c.model == LOCAL_MODEL for c in chunks)
    n = chunks[-1].usage.completion_tokens
    FIGURES.append(f"  primitive, streamed: {n} tokens in {took:.2f} s, first token after {first:.2f} s")


def test_tool_call_written_as_text_comes_back_as_tool_calls(gw):
    repaired = 'tiergate_tool_call_repairs_total{outcome="repaired",upstream="local"}'
    before = metric(gw, repaired)
    t = time.time()
    raw = client(gw).chat.completions.with_raw_response.create(
        model="primitive", max_tokens=48, temperature=0, tools=WEATHER, tool_choice="auto", messages=WEATHER_PROMPT)
    took = time.time() - t
    r = raw.parse()
    # Answered (and repaired) by the local model, not escalated to the frontier mock.
    assert raw.headers["x-tiergate-upstream"] == "local"
    msg = r.choices[0].message
    assert r.choices[0].finish_reason == "tool_calls", msg
    assert msg.tool_calls[0].type == "function"
    assert msg.tool_calls[0].function.name == "get_weather"
    assert "paris" in json.loads(msg.tool_calls[0].function.arguments)["city"].lower()
    assert metric(gw, repaired) == before + 1
    FIGURES.append(f"  tool call, whole: repaired in {took:.2f} s")


def test_streamed_tool_call_comes_back_as_tool_call_deltas(gw):
    t = time.time()
    raw = client(gw).chat.completions.with_raw_response.create(
        model="primitive", max_tokens=48, temperature=0, tools=WEATHER, messages=WEATHER_PROMPT, stream=True)
    assert raw.headers["x-tiergate-upstream"] == "local"
    name, args, finish = "", "", None
    for c in raw.parse():
        for ch in c.choices:
            for tc in ch.delta.tool_calls or []:
                name += tc.function.name or ""
                args += tc.function.arguments or ""
            finish = ch.finish_reason or finish
    assert (name, finish) == ("get_weather", "tool_calls")
    assert "paris" in json.loads(args)["city"].lower()
    FIGURES.append(f"  tool call, streamed: repaired in {time.time() - t:.2f} s")


def test_architecture_prompt_goes_to_the_frontier(gw):
    raw = client(gw).chat.completions.with_raw_response.create(
        model="auto", max_tokens=32,
        messages=[{"role": "user", "content": "Split the billing module of this monolith into its own "
                                              "microservice with an event bus, and plan the database migration."}])
    r = raw.parse()
    assert raw.headers["x-tiergate-tier"] == "architecture"
    assert raw.headers["x-tiergate-upstream"] == "frontier"
    assert r.choices[0].message.content == "Hello from frontier-mock"
