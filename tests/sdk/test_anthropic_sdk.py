"""Anthropic both ways through the tiergate binary, driven by the official SDKs:
the Anthropic Python SDK on /v1/messages (an OpenAI-compatible mock behind, and a strict
Anthropic mock behind), and the OpenAI Python SDK on chat completions with the Anthropic mock
behind. Streaming and tools included."""
import json

import anthropic
import openai
import pytest

import gateway
import mock_anthropic

ANTHROPIC_POLICY = """
upstreams:
  - name: local
    kind: openai
    base_url: {local}
    key_required: false
    model: qwen-mock
  - name: claude
    kind: anthropic
    base_url: {frontier}
    api_key: sk-ant-mock
    model: claude-mock
    price: {{ input_per_mtok: 3, output_per_mtok: 15, cached_input_per_mtok: 0.3 }}
tiers:
  - name: primitive
    upstreams: [local]
  - name: architecture
    upstreams: [claude]
reference_upstream: claude
"""

WEATHER = {"name": "get_weather", "description": "Weather of a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


@pytest.fixture(scope="module")
def gw_claude(upstream):
    server = mock_anthropic.start()
    # The mock serves /v1/messages; tiergate appends /v1/messages to a base without /v1.
    g = gateway.Gateway(upstream, f"http://127.0.0.1:{server.server_address[1]}", policy_text=ANTHROPIC_POLICY)
    yield g
    g.stop()
    server.shutdown()


def ant(gw):
    return anthropic.Anthropic(base_url=gw.base, api_key="client-key", max_retries=0)


def oai(gw):
    return openai.OpenAI(base_url=gw.base + "/v1", api_key="client-key", max_retries=0)


def test_anthropic_sdk_messages_via_openai_compatible_upstream(gw_claude):
    msg = ant(gw_claude).messages.create(model="primitive", max_tokens=64,
                                         messages=[{"role": "user", "content": "hi"}])
    assert msg.content[0].type == "text" and msg.content[0].text == "Hello from qwen-mock"
    assert msg.stop_reason == "end_turn"
    assert msg.usage.input_tokens == 11 and msg.usage.output_tokens == 4


def test_anthropic_sdk_stream_with_tools_via_openai_compatible_upstream(gw_claude):
    with ant(gw_claude).messages.stream(model="primitive", max_tokens=64, tools=[WEATHER],
                                        messages=[{"role": "user", "content": "weather in Paris?"}]) as s:
        final = s.get_final_message()
    tool = [b for b in final.content if b.type == "tool_use"][0]
    assert tool.name == "get_weather" and tool.input == {"city": "Paris"}
    assert final.stop_reason == "tool_use"
    assert final.usage.output_tokens == 4


def test_anthropic_sdk_passes_through_to_anthropic(gw_claude):
    c = ant(gw_claude)
    msg = c.messages.create(model="architecture", max_tokens=64, messages=[{"role": "user", "content": "hi"}])
    assert msg.content[0].text == "Hello from claude-mock"
    with c.messages.stream(model="architecture", max_tokens=64, tools=[WEATHER],
                           messages=[{"role": "user", "content": "weather?"}]) as s:
        final = s.get_final_message()
    assert final.content[0].input == {"city": "Paris"}
    assert mock_anthropic.SEEN[-1]["body"]["model"] == "claude-mock"
    assert c.messages.count_tokens(model="primitive", messages=[{"role": "user", "content": "count me"}]).input_tokens > 0


def test_openai_sdk_chat_with_anthropic_upstream(gw_claude):
    c = oai(gw_claude)
    r = c.chat.completions.create(model="architecture", messages=[{"role": "system", "content": "be brief"},
                                                                  {"role": "user", "content": "hi"}])
    assert r.choices[0].message.content == "Hello from claude-mock"
    assert r.usage.prompt_tokens == 25 and r.usage.prompt_tokens_details.cached_tokens == 5
    sent = mock_anthropic.SEEN[-1]["body"]
    assert sent["system"][0]["text"] == "be brief" and sent["max_tokens"] == 4096


def test_openai_sdk_stream_with_tools_and_usage_from_anthropic(gw_claude):
    tools = [{"type": "function", "function": {"name": WEATHER["name"], "parameters": WEATHER["input_schema"]}}]
    stream = oai(gw_claude).chat.completions.create(model="architecture", stream=True, tools=tools,
                                                    stream_options={"include_usage": True},
                                                    messages=[{"role": "user", "content": "weather?"}])
    args, finish, usage = "", None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for ch in chunk.choices:
            for tc in ch.delta.tool_calls or []:
                args += tc.function.arguments or ""
            finish = ch.finish_reason or finish
    assert json.loads(args) == {"city": "Paris"}
    assert finish == "tool_calls"
    assert usage.prompt_tokens == 25 and usage.completion_tokens == 7


def test_openai_sdk_gets_openai_shaped_errors_from_anthropic(gw_claude):
    with pytest.raises(openai.BadRequestError) as e:
        oai(gw_claude).chat.completions.create(model="architecture", n=2, messages=[{"role": "user", "content": "hi"}])
    assert e.value.body["param"] == "n"
