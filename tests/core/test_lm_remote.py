"""Provider backends against a loopback OpenAI-compatible server: the real litellm path and the direct HTTP path."""

from __future__ import annotations

import asyncio
import builtins
import socket
from collections.abc import Iterator

import pytest

from lmprog import usage
from lmprog._loopback import LoopbackServer, Reply, not_json, ok, rate_limited, server_error, slow
from lmprog.errors import LMError, ProviderError, RateLimitError, TimeoutError, UsageError
from lmprog.lm import LM, Constraint, make_backend
from lmprog.lm.http_backend import HTTPBackend, is_loopback, parse_retry_after
from lmprog.lm.litellm_backend import LiteLLMBackend
from lmprog.lm.ratelimit import RateLimiter

TRANSPORTS = ["http", "litellm"]
HI = [{"role": "user", "content": "say hello"}]


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer(answer="hello there") as s:
        yield s


def make_lm(server: LoopbackServer, transport: str, waits: list[float] | None = None, **kw: object) -> LM:
    """An uncached LM on the loopback server whose retry waits are captured instead of slept."""
    lm = LM("openai/test-model", api_base=server.url, api_key="sk-test-123", transport=transport,
            cache=False, **kw)
    if waits is not None:
        lm._sleep = waits.append
    return lm


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_plain_success_reports_text_usage_and_sends_the_request(server: LoopbackServer, transport: str) -> None:
    lm = make_lm(server, transport, temperature=0.0, max_tokens=20, seed=7, stop=["\n\n"])
    with usage.track() as t:
        resp = lm(messages=HI)
    assert resp.texts == ["hello there"]
    assert (resp.record.prompt_tokens, resp.record.completion_tokens) == (2, 2)
    assert t.totals.calls == 1 and t.totals.total_tokens == 4
    assert server.count == 1
    sent = server.received[0]
    assert sent.path.endswith("/v1/chat/completions")
    assert sent.body["model"] == "test-model"
    assert sent.body["messages"] == HI
    assert (sent.body["temperature"], sent.body["max_tokens"], sent.body["seed"], sent.body["stop"]) == (
        0.0, 20, 7, ["\n\n"])
    assert sent.headers["authorization"] == "Bearer sk-test-123"
    for option in ("api_key", "api_base", "transport", "rpm", "tpm"):
        assert option not in sent.body


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_429_waits_as_long_as_retry_after_then_succeeds(server: LoopbackServer, transport: str) -> None:
    waits: list[float] = []
    lm = make_lm(server, transport, waits)
    server.script(rate_limited(retry_after=7), ok())
    with usage.track() as t:
        resp = lm(messages=HI)
    assert resp.text == "hello there"
    assert waits == [7.0]  # the header, not the exponential backoff (which would be < 0.5 s here)
    assert server.count == 2
    assert [(r.ok, r.kind) for r in t.records] == [(False, "call"), (True, "retry")]
    assert t.records[0].error is not None and t.records[0].error.startswith("RateLimitError")
    assert len(resp.records) == 2


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_500_then_success_is_retried_with_backoff(server: LoopbackServer, transport: str) -> None:
    waits: list[float] = []
    lm = make_lm(server, transport, waits, backoff_base=0.5)
    server.script(server_error(500), ok("recovered"))
    resp = lm(messages=HI)
    assert resp.text == "recovered"
    assert server.count == 2
    assert len(waits) == 1 and 0.25 <= waits[0] <= 0.5


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_persistent_500_fails_after_the_configured_attempts(server: LoopbackServer, transport: str) -> None:
    waits: list[float] = []
    lm = make_lm(server, transport, waits, num_retries=2)
    server.script(*[server_error(500)] * 10)
    with usage.track() as t, pytest.raises(ProviderError) as info:
        lm(messages=HI)
    assert info.value.status_code == 500
    assert info.value.attempts == 3
    assert server.count == 3
    assert len(t.records) == 3 and not any(r.ok for r in t.records)
    assert len(waits) == 2


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_non_json_body_is_a_clear_provider_error_and_not_retried(server: LoopbackServer, transport: str) -> None:
    lm = make_lm(server, transport, [])
    server.script(not_json())
    with pytest.raises(ProviderError) as info:
        lm(messages=HI)
    message = str(info.value)
    assert "not a JSON completion" in message and "api_base" in message
    assert "Bad gateway page" in message
    assert server.count == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_timeout_becomes_lmprog_timeout_error(server: LoopbackServer, transport: str) -> None:
    lm = make_lm(server, transport, [], timeout=0.3, num_retries=0)
    server.script(slow(3.0))
    with pytest.raises(TimeoutError) as info:
        lm(messages=HI)
    assert isinstance(info.value, builtins.TimeoutError)  # also catchable as the builtin
    assert "0.3" in str(info.value)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_timeouts_are_retried(server: LoopbackServer, transport: str) -> None:
    waits: list[float] = []
    lm = make_lm(server, transport, waits, timeout=0.3, num_retries=1)
    server.script(slow(3.0), ok("in time"))
    assert lm(messages=HI).text == "in time"
    assert len(waits) == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_client_error_is_final(server: LoopbackServer, transport: str) -> None:
    lm = make_lm(server, transport, [])
    server.script(Reply(status=400, body='{"error": {"message": "unknown parameter foo"}}'))
    with pytest.raises(ProviderError) as info:
        lm(messages=HI)
    assert info.value.status_code == 400 and "unknown parameter foo" in str(info.value)
    assert server.count == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_unreachable_server_is_retried_then_reported(transport: str) -> None:
    with socket.socket() as s:  # a port that nobody listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    waits: list[float] = []
    lm = LM("openai/test-model", api_base=f"http://127.0.0.1:{port}/v1", api_key="sk-x", transport=transport,
            cache=False, num_retries=1)
    lm._sleep = waits.append
    with pytest.raises(LMError) as info:
        lm(messages=HI)
    assert info.value.attempts == 2 and len(waits) == 1
    assert "127.0.0.1" in str(info.value)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_n_samples(server: LoopbackServer, transport: str) -> None:
    resp = make_lm(server, transport)(messages=HI, n=3)
    assert resp.texts == ["hello there"] * 3
    assert server.received[0].body["n"] == 3


def test_http_path_asks_again_when_the_server_ignores_n(server: LoopbackServer) -> None:
    server.ignore_n = True  # like llama.cpp's server: one choice whatever n says
    resp = make_lm(server, "http")(messages=HI, n=3)
    assert resp.texts == ["hello there"] * 3
    assert [r.body["n"] for r in server.received] == [3, 2, 1]
    assert resp.record.completion_tokens == 6


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_acall_runs_concurrently_and_is_ledgered(server: LoopbackServer, transport: str) -> None:
    lm = make_lm(server, transport)

    async def run() -> list[str]:
        out = await asyncio.gather(*(lm.acall(messages=[{"role": "user", "content": f"q{i}"}]) for i in range(8)))
        return [r.text for r in out]

    with usage.track() as t:
        texts = asyncio.run(run())
    assert texts == ["hello there"] * 8
    assert t.totals.calls == 8 and server.count == 8


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_acall_retries_honour_retry_after(server: LoopbackServer, transport: str) -> None:
    waits: list[float] = []
    lm = make_lm(server, transport, waits)
    server.script(rate_limited(retry_after=3), ok("after wait"))
    with usage.track() as t:
        resp = asyncio.run(lm.acall(messages=HI))
    assert resp.text == "after wait" and waits == [3.0]
    assert [r.ok for r in t.records] == [False, True]


def test_prompt_goes_to_completions_on_http_and_as_a_user_message_on_litellm(server: LoopbackServer) -> None:
    make_lm(server, "http")(prompt="Label:")
    make_lm(server, "litellm")(prompt="Label:")
    http_req, litellm_req = server.received
    assert http_req.path.endswith("/v1/completions") and http_req.body["prompt"] == "Label:"
    assert litellm_req.path.endswith("/v1/chat/completions")
    assert litellm_req.body["messages"] == [{"role": "user", "content": "Label:"}]


def test_json_schema_constraint_becomes_response_format_on_http(server: LoopbackServer) -> None:
    schema = {"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]}
    make_lm(server, "http")(messages=HI, constraint=Constraint(json_schema=schema))
    fmt = server.received[0].body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"] == schema


def test_make_backend_picks_transport_and_takes_client_options_out_of_defaults() -> None:
    defaults = {"api_base": "http://127.0.0.1:1/v1", "api_key": "k", "rpm": 60, "tpm": 1000, "temperature": 0}
    backend = make_backend("openai/m", defaults)
    assert isinstance(backend, HTTPBackend) and isinstance(backend.limiter, RateLimiter)
    assert defaults == {"api_base": "http://127.0.0.1:1/v1", "api_key": "k", "temperature": 0}
    assert isinstance(make_backend("openai/m", {"api_base": "http://127.0.0.1:1/v1", "transport": "litellm"}),
                      LiteLLMBackend)
    assert isinstance(make_backend("openai/gpt-4o-mini", {}), LiteLLMBackend)
    assert isinstance(make_backend("anthropic/claude-x", {"api_base": "http://127.0.0.1:1"}), LiteLLMBackend)
    with pytest.raises(UsageError, match="transport"):
        make_backend("openai/m", {"transport": "carrier-pigeon"})
    with pytest.raises(UsageError, match="OpenAI API"):
        make_backend("anthropic/claude-x", {"transport": "http"})


def test_rate_limiter_is_shared_by_copies_of_an_lm(server: LoopbackServer) -> None:
    lm = make_lm(server, "http", rpm=600)
    assert lm.copy(temperature=1.0).backend.limiter is lm.backend.limiter


@pytest.mark.parametrize(("url", "loopback"), [
    ("http://127.0.0.1:8000/v1", True), ("http://127.8.9.1/v1", True), ("http://localhost:1234", True),
    ("http://[::1]:8000/v1", True), ("https://api.openai.com/v1", False), ("http://10.0.0.5:8000/v1", False),
    (None, False),
])
def test_loopback_detection(url: str | None, loopback: bool) -> None:
    assert is_loopback(url) is loopback


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_network_calls_are_blocked_in_tests_but_loopback_is_not(server: LoopbackServer, transport: str) -> None:
    remote = LM("openai/test-model", api_base="http://10.255.255.1:9/v1", transport=transport, cache=False)
    assert remote.backend.is_network
    with pytest.raises(UsageError, match="network LM calls are off"):
        remote(messages=HI)
    assert not make_lm(server, transport).backend.is_network
    assert LM("anthropic/claude-x").backend.is_network


def test_retry_after_parsing() -> None:
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # in the past
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


def test_rate_limiter_spaces_requests_and_tokens() -> None:
    now = [0.0]
    requests = RateLimiter(rpm=6, burst_seconds=10, clock=lambda: now[0])
    assert requests.reserve() == 0.0  # the bucket holds 10 s worth: one request
    assert requests.reserve() == pytest.approx(10.0)  # 6 per minute: the next one 10 s later
    assert requests.reserve() == pytest.approx(20.0)  # callers queue up, first come first served
    tokens = RateLimiter(tpm=600, burst_seconds=10, clock=lambda: now[0])  # 10 tokens/s, holds 100
    assert tokens.reserve(100) == 0.0
    tokens.settle(estimated=100, actual=300)  # the call used more than reserved: later calls pay for it
    assert tokens.reserve(0) == 0.0  # nothing asked, nothing to wait for
    assert tokens.reserve(10) == pytest.approx(21.0)
    now[0] = 1000.0
    assert tokens.reserve(50) == 0.0  # refilled


def test_rate_limited_error_carries_retry_after(server: LoopbackServer) -> None:
    lm = make_lm(server, "http", [], num_retries=0)
    server.script(rate_limited(retry_after=4))
    with pytest.raises(RateLimitError) as info:
        lm(messages=HI)
    assert info.value.retry_after == 4.0


def test_a_missing_api_key_is_final_and_says_how_to_give_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    # Port 9 on loopback: nothing is ever sent, the client refuses first for want of a key.
    lm = LM("openai/some-model", api_base="http://127.0.0.1:9/v1", transport="litellm", num_retries=3)
    with usage.track() as t, pytest.raises(ProviderError) as info:
        lm(messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 401 and not info.value.retryable
    assert "OPENAI_API_KEY" in str(info.value) and "api_key=" in str(info.value)
    assert t.totals.calls == 1  # not retried
