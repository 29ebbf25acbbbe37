"""The official OpenAI Python SDK against the running tiergate binary."""
import json

import openai
import pytest

import mock_upstream

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


@pytest.fixture
def client(gw):
    return openai.OpenAI(base_url=gw.base + "/v1", api_key="sk-client-key", max_retries=0)


def test_models_list(client):
    ids = [m.id for m in client.models.list()]
    assert ids == ["auto", "primitive", "architecture", "local", "frontier"]


def test_chat_routes_and_reports_headers(client):
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "Write a Python function that reverses a string."}])
    assert raw.headers["x-tiergate-tier"] == "primitive"
    assert raw.headers["x-tiergate-upstream"] == "local"
    done = raw.parse()
    assert done.choices[0].message.content == "Hello from qwen-mock"
    assert done.usage.prompt_tokens == 11 and done.usage.completion_tokens == 4


def test_architecture_goes_to_the_frontier_with_its_key(client):
    before = len(mock_upstream.SEEN)
    raw = client.chat.completions.with_raw_response.create(model="architecture", messages=[{"role": "user", "content": "x"}])
    assert raw.headers["x-tiergate-upstream"] == "frontier"
    seen = mock_upstream.SEEN[before]
    assert seen["authorization"] == "Bearer sk-upstream-frontier"
    assert seen["body"]["model"] == "frontier-mock"


def test_streaming(client):
    stream = client.chat.completions.create(model="primitive", stream=True, messages=[{"role": "user", "content": "hi"}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from qwen-mock"
    assert all(c.usage is None for c in chunks), "usage chunk leaked to a client that did not ask"
    # tiergate asked the upstream for usage anyway, for its own accounting.
    assert mock_upstream.SEEN[-1]["body"]["stream_options"] == {"include_usage": True}


def test_streaming_with_include_usage(client):
    stream = client.chat.completions.create(model="primitive", stream=True, stream_options={"include_usage": True},
                                            messages=[{"role": "user", "content": "hi"}])
    chunks = list(stream)
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 15
    assert chunks[-1].choices == []


def test_tool_calls(client):
    done = client.chat.completions.create(model="primitive", tools=[WEATHER_TOOL],
                                          messages=[{"role": "user", "content": "Weather in Paris?"}])
    call = done.choices[0].message.tool_calls[0]
    assert done.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}


def test_tool_calls_streamed(client):
    stream = client.chat.completions.create(model="primitive", tools=[WEATHER_TOOL], stream=True,
                                            messages=[{"role": "user", "content": "Weather in Paris?"}])
    name, args, finish = None, "", None
    for c in stream:
        for tc in c.choices[0].delta.tool_calls or [] if c.choices else []:
            name = tc.function.name or name
            args += tc.function.arguments or ""
        if c.choices and c.choices[0].finish_reason:
            finish = c.choices[0].finish_reason
    assert (name, json.loads(args), finish) == ("get_weather", {"city": "Paris"}, "tool_calls")


def test_unknown_model_is_a_404_the_sdk_understands(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-nope", messages=[{"role": "user", "content": "x"}])
    assert e.value.code == "model_not_found"


def test_usage_is_counted_in_metrics(gw, client):
    client.chat.completions.create(model="architecture", messages=[{"role": "user", "content": "x"}])
    text = gw.metrics()
    line = next(l for l in text.splitlines()
                if l.startswith('tiergate_input_tokens_total{source="reported",tier="architecture",upstream="frontier"}'))
    assert float(line.split()[-1]) >= 11
