"""Self-check: drive tests.fakes.llm.FakeLLM with the real litellm client."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct

for _var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
    os.environ.pop(_var, None)
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

import litellm  # noqa: E402
import pytest  # noqa: E402

from tests.fakes.llm import (  # noqa: E402
    BrokenStream,
    Error,
    FakeLLM,
    Hang,
    Slow,
    Text,
    ToolCalls,
)

MODEL = "openai/fake-model"
MESSAGES = [{"role": "user", "content": "what time is it?"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "Current time",
            "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}},
        },
    }
]


pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # pydantic noise from litellm


@pytest.fixture
async def fake():
    async with FakeLLM() as server:
        yield server


async def call(fake: FakeLLM, **kwargs):
    params = {
        "model": MODEL,
        "api_base": fake.base_url,
        "api_key": "sk-test",
        "messages": MESSAGES,
        "num_retries": 0,
        "max_retries": 0,
        **kwargs,
    }
    return await litellm.acompletion(**params)


async def collect(stream):
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return chunks, text


async def test_text_non_streamed_and_recorded(fake):
    fake.script(Text("hello there"))
    resp = await call(fake)
    assert resp.choices[0].message.content == "hello there"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens > 0
    [req] = fake.requests
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"]["Authorization"] == "Bearer sk-test"
    assert fake.chat_requests("fake-model")[0]["messages"] == MESSAGES
    assert fake.chat_requests("other") == []


async def test_default_echo_and_model_precedence(fake):
    fake.script(Text("generic"))
    fake.script(Text("specific"), model="openai/fake-model")
    first = await call(fake)
    second = await call(fake)
    third = await call(fake)
    assert [r.choices[0].message.content for r in (first, second, third)] == [
        "specific",
        "generic",
        "echo: what time is it?",
    ]


async def test_on_handler_falls_through(fake):
    fake.on(lambda body: None)
    fake.on(lambda body: Text(f"{len(body['messages'])} msgs"), model="fake-model")
    resp = await call(fake)
    assert resp.choices[0].message.content == "1 msgs"


async def test_raising_handler_is_reported_by_stop():
    fake = FakeLLM()
    await fake.start()
    fake.on(lambda body: 1 / 0)
    with pytest.raises(litellm.InternalServerError):
        await call(fake)
    with pytest.raises(RuntimeError) as info:
        await fake.stop()
    assert isinstance(info.value.__cause__, ZeroDivisionError)


async def test_text_streamed_in_several_chunks(fake):
    text = "The quick brown fox jumps over the lazy dog, again and again and again."
    fake.script(Text(text))
    chunks, got = await collect(await call(fake, stream=True))
    assert got == text
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) >= 3
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert fake.chat_requests()[0]["stream"] is True


async def test_stream_usage_with_include_usage(fake):
    fake.script(Text("some streamed words"))
    stream = await call(fake, stream=True, stream_options={"include_usage": True})
    chunks, got = await collect(stream)
    assert got == "some streamed words"
    usages = [getattr(c, "usage", None) for c in chunks]
    usage = next(u for u in reversed(usages) if u)
    assert usage.completion_tokens == len(got) // 4 + 1
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert fake.chat_requests()[0]["stream_options"] == {"include_usage": True}


async def test_tool_calls_non_streamed(fake):
    fake.script(ToolCalls([("get_time", {"tz": "UTC"}), ("get_time", {"tz": "Europe/Paris"})]))
    resp = await call(fake, tools=TOOLS)
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert [c.id for c in calls] == ["call_1", "call_2"]
    assert [c.function.name for c in calls] == ["get_time", "get_time"]
    assert [json.loads(c.function.arguments) for c in calls] == [
        {"tz": "UTC"},
        {"tz": "Europe/Paris"},
    ]
    assert fake.chat_requests()[0]["tools"][0]["function"]["name"] == "get_time"


async def test_tool_calls_streamed(fake):
    args = {"tz": "America/Argentina/Buenos_Aires", "format": "iso8601"}
    fake.script(ToolCalls([("get_time", args), ("lookup", {"q": "x"})]))
    chunks, _ = await collect(await call(fake, stream=True, tools=TOOLS))
    calls: dict[int, dict] = {}
    for chunk in chunks:
        for tc in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            slot = calls.setdefault(tc.index, {"id": None, "name": "", "args": ""})
            slot["id"] = tc.id or slot["id"]
            slot["name"] += tc.function.name or ""
            slot["args"] += tc.function.arguments or ""
    assert [calls[i]["id"] for i in sorted(calls)] == ["call_1", "call_2"]
    assert [calls[i]["name"] for i in sorted(calls)] == ["get_time", "lookup"]
    assert json.loads(calls[0]["args"]) == args
    assert json.loads(calls[1]["args"]) == {"q": "x"}
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert "tool_calls" in finishes
    # stream_chunk_builder reassembles the same tool calls
    rebuilt = litellm.stream_chunk_builder(chunks, messages=MESSAGES)
    assert json.loads(rebuilt.choices[0].message.tool_calls[0].function.arguments) == args


@pytest.mark.parametrize(
    ("reply", "exc_name"),
    [
        (Error(500, "boom"), "InternalServerError"),
        (FakeLLM.rate_limited(), "RateLimitError"),
        (FakeLLM.auth_error(), "AuthenticationError"),
        (FakeLLM.context_window_error(), "ContextWindowExceededError"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_errors_map_to_litellm_exceptions(fake, reply, exc_name, stream):
    fake.script(reply)
    with pytest.raises(getattr(litellm, exc_name)) as info:
        resp = await call(fake, stream=stream)
        if stream:
            await collect(resp)
    assert type(info.value).__name__ == exc_name
    assert info.value.status_code == reply.status
    assert reply.message in str(info.value)
    assert len(fake.requests) == 1  # no hidden retries


async def test_rate_limit_sends_retry_after(fake):
    fake.script(FakeLLM.rate_limited())
    with pytest.raises(litellm.RateLimitError) as info:
        await call(fake)
    headers = info.value.litellm_response_headers or info.value.response.headers
    assert headers.get("retry-after") == "1"


async def test_broken_stream_raises_mid_iteration(fake):
    fake.script(BrokenStream("partial answer that is long enough for two chunks"))
    stream = await call(fake, stream=True)
    seen = []
    # litellm wraps the dropped connection in MidStreamFallbackError (a ServiceUnavailableError)
    with pytest.raises(litellm.exceptions.MidStreamFallbackError) as info:
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                seen.append(chunk.choices[0].delta.content)
    assert len(seen) >= 2, "expected some content before the connection dropped"
    assert isinstance(info.value, litellm.ServiceUnavailableError)
    assert isinstance(info.value.original_exception, litellm.APIConnectionError)
    assert info.value.generated_content == "".join(seen)


async def test_broken_non_streamed_raises(fake):
    fake.script(BrokenStream())
    # the openai SDK reports "Connection error."; litellm maps it to InternalServerError
    with pytest.raises(litellm.InternalServerError, match="Connection error"):
        await call(fake)


async def test_slow_and_hang_time_out(fake):
    fake.script(Slow(0.05, Text("late but fine")), Hang())
    resp = await call(fake)
    assert resp.choices[0].message.content == "late but fine"
    with pytest.raises(litellm.Timeout):
        await call(fake, timeout=0.3)


async def test_hang_released_by_stop():
    fake = FakeLLM()
    await fake.start()
    fake.script(Hang())
    task = asyncio.create_task(call(fake, timeout=30))
    while not fake.requests:
        await asyncio.sleep(0.01)
    await asyncio.wait_for(fake.stop(), 3)
    with pytest.raises(litellm.InternalServerError, match="Connection error"):
        await asyncio.wait_for(task, 5)


async def test_embeddings_and_models(fake):
    resp = await litellm.aembedding(
        model="openai/fake-embed",
        api_base=fake.base_url,
        api_key="sk-test",
        input=["alpha", "beta", "alpha"],
    )
    vecs = [d["embedding"] for d in resp.data]
    assert len(vecs[0]) == 8 and vecs[0] == vecs[2] != vecs[1]
    assert resp.usage.prompt_tokens > 0
    assert "encoding_format" not in fake.requests[0]["json"]  # litellm bypasses the SDK default
    kwargs = {"api_base": fake.base_url, "api_key": "sk-test", "input": "alpha", "dimensions": 16}
    # litellm rejects `dimensions` unless the model name contains "text-embedding-3"
    plain = await litellm.aembedding(model="openai/text-embedding-3-small", **kwargs)
    vec = plain.data[0]["embedding"]
    assert len(vec) == 16
    assert abs(sum(v * v for v in vec) - 1) < 1e-3
    # an explicit encoding_format="base64" is passed through to the caller undecoded
    b64 = await litellm.aembedding(
        model="openai/text-embedding-3-small", encoding_format="base64", **kwargs
    )
    raw = base64.b64decode(b64.data[0]["embedding"])
    assert struct.unpack("<16f", raw) == pytest.approx(vec, abs=1e-6)
    fake.script(Text("x"), model="scripted-model")
    await call(fake)
    import aiohttp

    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{fake.base_url}/models") as r,
    ):
        ids = {m["id"] for m in (await r.json())["data"]}
    assert {"fake-embed", "scripted-model", "fake-model"} <= ids
