"""Virtual keys with the official SDKs: the OpenAI and Anthropic Python SDKs with api_key set
to a key made by `tiergate keys new` (chat whole and streamed, responses, models; messages whole
and streamed, count_tokens); a wrong key is the SDKs'
own AuthenticationError, a key over its rate limit their RateLimitError."""
import os
import subprocess

import anthropic
import openai
import pytest

import gateway

POLICY = gateway.POLICY + """auth:
  keys_file: {keys_file}
"""


def new_key(name, *args):
    out = subprocess.run([gateway.BIN, "keys", "new", "--name", name, "--team", "sdk", *args],
                         check=True, capture_output=True, text=True).stdout
    key, entry = out.split("\n", 1)
    assert key.startswith("tg-") and key not in entry
    return key, entry


@pytest.fixture(scope="module")
def keyed(upstream, tmp_path_factory):
    key, entry = new_key("sdk-user")
    slow, slow_entry = new_key("sdk-slow", "--rpm", "1")
    keys_file = tmp_path_factory.mktemp("keys") / "keys.yaml"
    keys_file.write_text(entry + slow_entry)
    policy = POLICY.replace("{keys_file}", str(keys_file))
    g = gateway.Gateway(upstream, upstream, policy)
    yield g, key, slow
    g.stop()
    g.log.seek(0)
    log = g.log.read()
    assert key not in log and slow not in log


def test_openai_sdk_with_a_virtual_key(keyed):
    g, key, _ = keyed
    client = openai.OpenAI(base_url=g.base + "/v1", api_key=key, max_retries=0)
    r = client.chat.completions.create(model="primitive", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content
    chunks = list(client.chat.completions.create(
        model="primitive", messages=[{"role": "user", "content": "hi"}], stream=True))
    assert chunks
    assert any(m.id == "auto" for m in client.models.list())
    r = client.responses.create(model="primitive", input="hi")
    assert r.output_text
    bad = openai.OpenAI(base_url=g.base + "/v1", api_key="tg-not-a-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as e:
        bad.chat.completions.create(model="primitive", messages=[{"role": "user", "content": "hi"}])
    assert "tg-not-a-key" not in str(e.value)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


def test_anthropic_sdk_with_a_virtual_key(keyed):
    g, key, _ = keyed
    client = anthropic.Anthropic(base_url=g.base, api_key=key, max_retries=0)
    m = client.messages.create(model="primitive", max_tokens=64,
                               messages=[{"role": "user", "content": "hi"}])
    assert m.content[0].text
    with client.messages.stream(model="primitive", max_tokens=64,
                                messages=[{"role": "user", "content": "hi"}]) as s:
        assert "".join(s.text_stream)
    n = client.messages.count_tokens(model="primitive", messages=[{"role": "user", "content": "hi"}])
    assert n.input_tokens > 0
    bad = anthropic.Anthropic(base_url=g.base, api_key="tg-not-a-key", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        bad.messages.create(model="primitive", max_tokens=8, messages=[{"role": "user", "content": "hi"}])


def test_a_key_over_its_rate_is_the_sdks_rate_limit_error(keyed):
    g, _, slow = keyed
    client = openai.OpenAI(base_url=g.base + "/v1", api_key=slow, max_retries=0)
    client.chat.completions.create(model="primitive", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(model="primitive", messages=[{"role": "user", "content": "hi"}])
    assert int(e.value.response.headers["retry-after"]) >= 1
