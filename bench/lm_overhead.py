"""What lmprog's LM layer costs on top of the wire, side by side with raw clients (issue 3).

    python bench/lm_overhead.py            # full run, ~1 min
    python bench/lm_overhead.py --quick    # fewer calls

(1) client CPU per call against a loopback server with no delay: lmprog (HTTP path and litellm path, cache
    off) vs a raw httpx POST loop vs raw litellm.completion.
(2) throughput with 64 calls in flight and 200 ms server latency, as a fraction of the 320 calls/s ideal
    (target >= 90%): lmprog with threads and with acall, raw httpx/aiohttp async, raw litellm.acompletion.
(3) the embedded model: bench/local_model.py, run here as a child process (examples/s, lmprog vs raw).
(4) cache hits: µs per hit from memory and from disk, RSS growth and disk size for N entries.

The server runs in a child process so its CPU does not compete with the client for the GIL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
os.environ.setdefault("LMPROG_CACHE_DIR", tempfile.mkdtemp(prefix="lmprog-bench-cache-"))

from lmprog._loopback import serve_in_subprocess  # noqa: E402
from lmprog.lm import LM  # noqa: E402

MODEL = "openai/bench-model"
KEY = "sk-bench"


def msgs(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Classify review number {i}: a delight from start to finish."}]


def row(name: str, value: str, note: str = "") -> None:
    print(f"  {name:<38} {value:>14}   {note}")


def _litellm() -> Any:
    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    return litellm


# -- (1) CPU per call ---------------------------------------------------------------------------------------
def cpu_per_call(fn: Any, n: int) -> float:
    """Client CPU seconds per call (process time: every thread of this process, none of the server's)."""
    for i in range(min(20, n)):
        fn(i)
    t0 = time.process_time()
    for i in range(n):
        fn(i)
    return (time.process_time() - t0) / n


def section_cpu(url: str, n: int) -> None:
    import httpx

    print(f"\n(1) client CPU per call, loopback server without delay, {n} sequential calls")
    lm_http = LM(MODEL, api_base=url, api_key=KEY, cache=False)
    lm_litellm = LM(MODEL, api_base=url, api_key=KEY, cache=False, transport="litellm")
    client = httpx.Client()
    litellm = _litellm()

    def raw_httpx(i: int) -> str:
        body = json.dumps({"model": "bench-model", "messages": msgs(i)}).encode()
        r = client.post(f"{url}/chat/completions", content=body,
                        headers={"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"})
        return json.loads(r.content)["choices"][0]["message"]["content"]

    def raw_litellm(i: int) -> str:
        r = litellm.completion(model=MODEL, messages=msgs(i), api_base=url, api_key=KEY, num_retries=0)
        return r.choices[0].message.content

    raw = cpu_per_call(raw_httpx, n)
    ours = cpu_per_call(lambda i: lm_http(messages=msgs(i)).text, n)
    ours_litellm = cpu_per_call(lambda i: lm_litellm(messages=msgs(i)).text, max(50, n // 5))
    lite = cpu_per_call(raw_litellm, max(50, n // 5))
    row("raw httpx POST", f"{raw * 1e3:.2f} ms", "baseline")
    row("lmprog LM, HTTP path (cache off)", f"{ours * 1e3:.2f} ms", f"{ours / raw:.2f}x raw httpx")
    row("lmprog LM, litellm path (cache off)", f"{ours_litellm * 1e3:.2f} ms", f"{ours_litellm / raw:.2f}x raw httpx")
    row("raw litellm.completion", f"{lite * 1e3:.2f} ms", f"{lite / raw:.2f}x raw httpx")
    client.close()


# -- (2) throughput at 64 in flight ---------------------------------------------------------------------------
def section_throughput(url: str, calls: int, concurrency: int, latency: float) -> None:
    import httpx

    ideal = concurrency / latency
    print(f"\n(2) throughput, {concurrency} in flight, {latency * 1e3:.0f} ms server latency, {calls} calls "
          f"(ideal {ideal:.0f} calls/s, target >= 90%)")
    litellm = _litellm()

    def report(name: str, seconds: float) -> None:
        rate = calls / seconds
        row(name, f"{rate:.0f} calls/s", f"{rate / ideal:.0%} of ideal")

    lm = LM(MODEL, api_base=url, api_key=KEY, cache=False)
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda i: lm(messages=msgs(i)), range(concurrency)))  # open the connections
        t0 = time.perf_counter()
        list(pool.map(lambda i: lm(messages=msgs(i)), range(calls)))
        report("lmprog LM, threads (HTTP path)", time.perf_counter() - t0)

    async def gather(make: Any) -> float:
        sem = asyncio.Semaphore(concurrency)

        async def one(i: int) -> Any:
            async with sem:
                return await make(i)

        await asyncio.gather(*(one(i) for i in range(concurrency)))
        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(calls)))
        return time.perf_counter() - t0

    report("lmprog LM.acall, asyncio (HTTP path)", asyncio.run(gather(lambda i: lm.acall(messages=msgs(i)))))

    async def raw_httpx() -> float:
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency)) as client:
            async def post(i: int) -> Any:
                body = json.dumps({"model": "bench-model", "messages": msgs(i)}).encode()
                r = await client.post(f"{url}/chat/completions", content=body,
                                      headers={"Content-Type": "application/json"})
                return json.loads(r.content)

            return await gather(post)

    report("raw httpx.AsyncClient", asyncio.run(raw_httpx()))

    async def raw_aiohttp() -> float:
        import aiohttp

        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
            async def post(i: int) -> Any:
                body = json.dumps({"model": "bench-model", "messages": msgs(i)}).encode()
                async with session.post(f"{url}/chat/completions", data=body,
                                        headers={"Content-Type": "application/json"}) as r:
                    return json.loads(await r.read())

            return await gather(post)

    report("raw aiohttp (the transport acall uses)", asyncio.run(raw_aiohttp()))
    report("raw litellm.acompletion", asyncio.run(gather(lambda i: litellm.acompletion(
        model=MODEL, messages=msgs(i), api_base=url, api_key=KEY, num_retries=0))))
    lm_lite = LM(MODEL, api_base=url, api_key=KEY, cache=False, transport="litellm")
    report("lmprog LM.acall, litellm path", asyncio.run(gather(lambda i: lm_lite.acall(messages=msgs(i)))))


# -- (3) the embedded model --------------------------------------------------------------------------------
def embedded_section(quick: bool) -> None:
    """Examples/s of a 4-shot classification on the embedded model, lmprog vs a raw llama-cpp-python loop.

    It runs bench/local_model.py in a child process, so the model's threads do not share this process."""
    import importlib.util
    import subprocess

    print("\n(3) embedded model (bench/local_model.py)")
    if importlib.util.find_spec("llama_cpp") is None:
        print("  skipped: llama-cpp-python is not installed (pip install 'lmprog[local]')")
        return
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "local_model.py")
    args = [sys.executable, script, "--n", "20" if quick else "40", "--rounds", "1" if quick else "2"]
    out = subprocess.run(args, capture_output=True, text=True, check=False)
    print("  " + (out.stdout.strip() or out.stderr.strip()[-2000:]).replace("\n", "\n  "))


# -- (4) cache hits ------------------------------------------------------------------------------------------
def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def section_cache(entries: int) -> None:
    from lmprog.cache import Cache
    from lmprog.lm import BackendResult, LMRequest

    print(f"\n(4) cache, {entries} entries of ~60-character answers")
    with tempfile.TemporaryDirectory() as d:
        cache = Cache(d, memory_entries=entries)
        reqs = [LMRequest(model=MODEL, messages=msgs(i), params={"temperature": 0.0}) for i in range(entries)]
        answer = BackendResult(texts=["positive — the reviewer praises the pacing and the acting."],
                               prompt_tokens=20, completion_tokens=12)
        rss0 = rss_bytes()
        t0 = time.perf_counter()
        for r in reqs:
            cache.put(r, answer)
        put = (time.perf_counter() - t0) / entries
        rss_delta = rss_bytes() - rss0
        t0 = time.perf_counter()
        for r in reqs:
            cache.get(r)
        mem_hit = (time.perf_counter() - t0) / entries
        cache.clear_memory()
        t0 = time.perf_counter()
        for r in reqs:
            cache.get(r)
        disk_hit = (time.perf_counter() - t0) / entries
        disk = cache.disk_bytes()
        cache.close()

    os.environ["LMPROG_CACHE_DIR"] = tempfile.mkdtemp(prefix="lmprog-bench-lm-")
    lm = LM(MODEL, api_base="http://127.0.0.1:9/v1")  # never reached: every call below is a hit
    from lmprog.cache import get_cache

    n = min(entries, 5000)
    for r in reqs[:n]:
        get_cache().put(LMRequest(model=MODEL, messages=r.messages, params=dict(lm.defaults)), answer)
    t0 = time.perf_counter()
    for r in reqs[:n]:
        assert lm(messages=r.messages).record.cache_hit
    lm_hit = (time.perf_counter() - t0) / n
    row("write (memory + disk)", f"{put * 1e6:.0f} µs/entry")
    row("hit from memory LRU (Cache.get)", f"{mem_hit * 1e6:.1f} µs/hit")
    row("hit from disk (Cache.get)", f"{disk_hit * 1e6:.0f} µs/hit")
    row("hit through LM.__call__ (memory)", f"{lm_hit * 1e6:.1f} µs/hit", "key hash + ledger + history")
    row("RSS growth", f"{rss_delta / 2**20:.1f} MiB", f"{rss_delta / entries:.0f} B/entry in memory")
    row("disk size", f"{disk / 2**20:.1f} MiB", f"{disk / entries:.0f} B/entry")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer calls (noisier figures)")
    args = parser.parse_args()
    print(f"lmprog LM overhead bench · python {sys.version.split()[0]} · {os.cpu_count()} cores")
    with serve_in_subprocess(delay=0.0) as url:
        section_cpu(url, 200 if args.quick else 1000)
    with serve_in_subprocess(delay=0.2) as url:
        section_throughput(url, 320 if args.quick else 640, 64, 0.2)
    embedded_section(args.quick)
    section_cache(2000 if args.quick else 10000)


if __name__ == "__main__":
    main()
