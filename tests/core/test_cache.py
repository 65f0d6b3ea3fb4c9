"""The LM cache: keys, secrets, JSON-only storage, corruption, threads and processes."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from lmprog import usage
from lmprog._loopback import LoopbackServer
from lmprog.cache import Cache, get_cache, redact, request_key
from lmprog.lm import LM, BackendResult, Constraint, LMRequest
from lmprog.settings import thread_map

SECRET = "sk-LEAKCHECK-9f8e7d"
HI = [{"role": "user", "content": "say hello"}]


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh cache directory for this test only (get_cache re-reads LMPROG_CACHE_DIR)."""
    d = tmp_path / "cache"
    monkeypatch.setenv("LMPROG_CACHE_DIR", str(d))
    return d


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer(answer="hello there") as s:
        yield s


def req(**params: object) -> LMRequest:
    return LMRequest(model="openai/m", messages=HI, params=dict(params))


def test_key_ignores_api_keys_and_auth_headers_but_not_api_base() -> None:
    base = request_key(req(temperature=0, api_base="http://127.0.0.1:1/v1"))
    assert request_key(req(temperature=0, api_base="http://127.0.0.1:1/v1", api_key=SECRET)) == base
    assert request_key(req(temperature=0, api_base="http://127.0.0.1:1/v1", api_key="other")) == base
    with_header = req(temperature=0, api_base="http://127.0.0.1:1/v1",
                      extra_headers={"Authorization": f"Bearer {SECRET}", "x-api-key": SECRET})
    assert request_key(with_header) == request_key(req(temperature=0, api_base="http://127.0.0.1:1/v1",
                                                       extra_headers={}))
    assert request_key(req(temperature=0, api_base="http://127.0.0.1:2/v1")) != base
    transport = req(temperature=0, api_base="http://127.0.0.1:1/v1", transport="litellm", rpm=60, timeout=5)
    assert request_key(transport) == base


def test_key_changes_with_every_sampling_parameter_rollout_and_constraint() -> None:
    variants = [
        req(), req(temperature=0.0), req(temperature=0.7), req(max_tokens=10), req(max_tokens=11),
        req(stop=["\n"]), req(stop=["---"]), req(seed=1), req(seed=2), req(n=2), req(n=3), req(top_p=0.9),
        req(top_p=0.5), req(response_format={"type": "json_object"}),
        LMRequest(model="openai/m", messages=HI, rollout_id=1), LMRequest(model="openai/m", messages=HI, rollout_id=2),
        LMRequest(model="openai/m", messages=HI, constraint=Constraint(grammar='root ::= "a"')),
        LMRequest(model="openai/m", messages=HI, constraint=Constraint(json_schema={"type": "object"})),
        LMRequest(model="openai/other", messages=HI),
        LMRequest(model="openai/m", messages=[{"role": "user", "content": "say bye"}]),
        LMRequest(model="openai/m", prompt="say hello"),
    ]
    keys = [request_key(v) for v in variants]
    assert len(set(keys)) == len(keys)


def test_key_is_stable_across_dict_order_and_ignores_fake_context() -> None:
    a = LMRequest(model="m", messages=HI, params={"temperature": 0, "max_tokens": 5})
    b = LMRequest(model="m", messages=HI, params={"max_tokens": 5, "temperature": 0}, signature=object(),
                  adapter=object())
    assert request_key(a) == request_key(b)


def test_redact_drops_secrets_and_keeps_sampling_parameters_and_content() -> None:
    schema = {"type": "object", "properties": {"key_points": {"type": "string"}}}
    out = redact({
        "model": "m", "messages": [{"role": "user", "content": "my api_key is not a param"}],
        "params": {"api_key": SECRET, "max_tokens": 5, "max_completion_tokens": 6, "access_token": SECRET,
                   "client_secret": SECRET, "headers": {"Authorization": SECRET, "X-Trace": "t1"},
                   "api_base": f"https://user:{SECRET}@host.example:8443/v1?key={SECRET}&region=eu",
                   "response_format": {"type": "json_schema", "json_schema": {"schema": schema}}},
    })
    assert SECRET not in json.dumps(out)
    params = out["params"]
    assert params["max_tokens"] == 5 and params["max_completion_tokens"] == 6
    assert params["headers"] == {"X-Trace": "t1"}
    assert params["api_base"] == "https://host.example:8443/v1?region=eu"
    assert params["response_format"]["json_schema"]["schema"] == schema
    assert out["messages"][0]["content"] == "my api_key is not a param"


@pytest.mark.parametrize("transport", ["http", "litellm"])
def test_no_api_key_reaches_the_cache_directory_or_the_history(cache_dir: Path, server: LoopbackServer,
                                                               transport: str) -> None:
    lm = LM("openai/test-model", api_base=server.url, api_key=SECRET, transport=transport,
            extra_headers={"X-Api-Key": SECRET})
    for i in range(3):
        lm(messages=[{"role": "user", "content": f"question {i}"}])
    lm(messages=[{"role": "user", "content": "question 0"}])  # a hit, remembered in history too
    assert server.received[0].headers["authorization"] == f"Bearer {SECRET}"  # it was really used
    get_cache().close()
    files = [p for p in cache_dir.rglob("*") if p.is_file()]
    assert files
    for p in files:
        assert SECRET.encode() not in p.read_bytes(), p
    shown = io.StringIO()
    lm.inspect_history(10, file=shown)
    assert "question 2" in shown.getvalue()
    assert SECRET not in shown.getvalue()
    assert SECRET not in repr(list(lm.history))


def test_values_are_json_text_never_pickle(cache_dir: Path) -> None:
    cache = get_cache()
    cache.put(req(seed=1), BackendResult(texts=["a", "b"], prompt_tokens=3, completion_tokens=4))
    cache.close()
    with sqlite3.connect(cache_dir / "cache.db") as db:
        rows = db.execute("SELECT mode, value FROM Cache").fetchall()
    assert rows
    for mode, value in rows:
        assert mode != 4  # diskcache's MODE_PICKLE
        assert json.loads(value) == {"texts": ["a", "b"], "prompt_tokens": 3, "completion_tokens": 4}


def test_a_pickled_entry_is_refused_not_loaded(cache_dir: Path) -> None:
    import diskcache

    request = req(seed=2)
    with diskcache.Cache(str(cache_dir)) as foreign:  # someone else's pickle under our key
        foreign.set(request_key(request), {"texts": ["from pickle"]})
    with pytest.warns(RuntimeWarning, match="unpickle"):
        assert Cache(str(cache_dir)).get(request) is None


def test_hits_cost_nothing_and_are_counted(cache_dir: Path, server: LoopbackServer) -> None:
    lm = LM("openai/test-model", api_base=server.url)
    with usage.track() as t:
        first = lm(messages=HI)
        second = lm(messages=HI)
        fresh = lm(messages=HI, rollout_id=1)
        uncached = lm(messages=HI, cache=False)
    assert [first.record.cache_hit, second.record.cache_hit, fresh.record.cache_hit,
            uncached.record.cache_hit] == [False, True, False, False]
    assert second.record.cost == 0.0 and second.texts == first.texts
    assert server.count == 3
    assert t.totals.cache_hits == 1 and t.totals.billed_calls == 3
    stats = get_cache().stats()
    assert stats["hits"] == 1 and stats["misses"] == 2 and stats["disk_bytes"] > 0


def test_memory_lru_is_bounded_and_falls_back_to_disk(cache_dir: Path) -> None:
    cache = Cache(str(cache_dir), memory_entries=3)
    for i in range(5):
        cache.put(req(seed=i), BackendResult(texts=[f"t{i}"]))
    assert cache.stats()["memory_entries"] == 3
    hit = cache.get(req(seed=0))
    assert hit is not None and hit.texts == ["t0"]
    assert (cache.memory_hits, cache.disk_hits) == (0, 1)
    assert cache.get(req(seed=0)) is not None and cache.memory_hits == 1


def test_corrupt_cache_is_rebuilt_with_a_warning_and_the_call_works(cache_dir: Path,
                                                                      server: LoopbackServer) -> None:
    cache_dir.mkdir()
    (cache_dir / "cache.db").write_bytes(b"this is not a sqlite database" * 100)
    lm = LM("openai/test-model", api_base=server.url)
    with pytest.warns(RuntimeWarning, match="corrupt"):
        assert lm(messages=HI).text == "hello there"
    assert list(cache_dir.glob("cache.db.corrupt-*"))
    assert lm(messages=HI).record.cache_hit


def test_unusable_cache_directory_warns_once_and_calls_continue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 server: LoopbackServer) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("LMPROG_CACHE_DIR", str(blocker))
    lm = LM("openai/test-model", api_base=server.url)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert lm(messages=HI).text == "hello there"
        assert lm(messages=HI).record.cache_hit  # memory still serves
        lm(messages=[{"role": "user", "content": "another"}])
    assert len([w for w in caught if "cannot be used" in str(w.message)]) == 1


def test_sixteen_threads_share_one_lm_and_cache_with_exact_ledger_counts(cache_dir: Path,
                                                                          server: LoopbackServer) -> None:
    lm = LM("openai/test-model", api_base=server.url)
    questions = [[{"role": "user", "content": f"question {i}"}] for i in range(160)]
    with usage.track() as t:
        first = thread_map(lambda m: lm(messages=m).text, questions, threads=16)
    assert first == ["hello there"] * 160
    assert t.totals.calls == 160 and t.totals.cache_hits == 0 and t.totals.failed == 0
    assert server.count == 160
    with usage.track() as again:
        thread_map(lambda m: lm(messages=m).text, questions, threads=16)
    assert again.totals.calls == 160 and again.totals.cache_hits == 160
    assert server.count == 160
    assert get_cache().stats()["hits"] == 160


def test_entries_are_shared_across_processes(cache_dir: Path) -> None:
    code = (
        "from lmprog.cache import get_cache\n"
        "from lmprog.lm import LMRequest, BackendResult\n"
        "r = LMRequest(model='openai/m', messages=[{'role': 'user', 'content': 'from a child'}])\n"
        "get_cache().put(r, BackendResult(texts=['child answer'], prompt_tokens=1, completion_tokens=2))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]), *sys.path])}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)
    hit = get_cache().get(LMRequest(model="openai/m", messages=[{"role": "user", "content": "from a child"}]))
    assert hit is not None and hit.texts == ["child answer"] and hit.completion_tokens == 2
