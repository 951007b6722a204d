"""Load generator for the ack benchmark, run as its own process.

Why a separate process: the harness process also hosts the fake Slack, which serves the
bot's after-the-ack Web API calls. Timing requests from threads of that same interpreter
would charge the fake's work (through the GIL) to the bot's latency, but not to the bare
app's, and skew the ratio. Here nothing else runs.

Protocol: one JSON object per line on stdin, one JSON answer per line on stdout.

    {"url": "http://127.0.0.1:P/slack/events", "secret": "...", "concurrency": 50,
     "timeout": 5, "max_seconds": 60,
     "requests": [{"text": "status", "user": "U1", "channel": "C1", "response_url": "..."}]}
 -> {"latencies": [seconds, ...], "errors": ["HTTP 500", ...], "wall": seconds}

Every body is built and signed before the clock starts; each latency is
time.perf_counter() from opening the connection to the last byte of the response.
`concurrency` workers each keep exactly one request in flight until all are sent.

Scripts instead of `requests` (and `concurrency`): `"scripts": [[request, ...], ...]`
runs the scripts at once, one worker each, and each script in order, every request
sent the moment the one before it was answered (people typing back to back in one
incident). The answer adds, per script and request, when its answer arrived:

 -> {..., "scripts": [[{"acked_at": unix seconds or null, "latency": seconds or null,
                        "error": null or "HTTP 500"}, ...], ...]}

`acked_at` is time.time() at the last byte of the answer: the wall clock, which the bot
process on this machine reads too (its database times are wall-clock UTC at speed 1).
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.slackreq import sign, slash_body  # noqa: E402

Prepared = tuple[bytes, dict[str, str]]


def _prepare(spec: dict, requests: list[dict], now: int) -> list[Prepared]:
    prepared = []
    for r in requests:
        body = slash_body(
            r["text"], user_id=r["user"], channel_id=r["channel"], response_url=r["response_url"]
        )
        headers = sign(spec["secret"], body, now)
        headers["Content-Length"] = str(len(body))
        prepared.append((body, headers))
    return prepared


def _send(host: str, port: int | None, path: str, request: Prepared, timeout: float) -> dict:
    """One request: its latency and answer time, or what went wrong."""
    body, headers = request
    start = time.perf_counter()
    try:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        acked_at = time.time()
        conn.close()
        elapsed = time.perf_counter() - start
    except Exception as exc:  # a timeout or refused connection is a result too
        return {"latency": None, "acked_at": None, "error": type(exc).__name__}
    if response.status != 200:
        return {"latency": None, "acked_at": None, "error": f"HTTP {response.status}"}
    return {"latency": elapsed, "acked_at": acked_at, "error": None}


def run(spec: dict) -> dict:
    parts = urlsplit(spec["url"])
    if parts.hostname != "127.0.0.1":
        raise ValueError("the load generator only talks to 127.0.0.1")
    if "scripts" in spec:
        return run_scripts(spec)
    now = int(time.time())
    prepared = _prepare(spec, spec["requests"], now)
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    index = iter(range(len(prepared)))
    concurrency = max(1, min(int(spec["concurrency"]), len(prepared)))
    barrier = threading.Barrier(concurrency)
    timeout = float(spec.get("timeout", 5))
    host = str(parts.hostname)
    # a bound on the whole batch: past it, no new request starts (the rest count as errors)
    give_up = time.monotonic() + float(spec.get("max_seconds", 60))

    def worker() -> None:
        barrier.wait()
        while True:
            with lock:
                i = next(index, None)
                if i is not None and time.monotonic() > give_up:
                    errors.append("batch time limit")
                    continue
            if i is None:
                return
            answer = _send(host, parts.port, parts.path, prepared[i], timeout)
            with lock:
                if answer["error"] is None:
                    latencies.append(answer["latency"])
                else:
                    errors.append(answer["error"])

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    wall = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"latencies": latencies, "errors": errors, "wall": time.perf_counter() - wall}


def run_scripts(spec: dict) -> dict:
    """Each script in its own worker, its requests one after the other; all at once."""
    parts = urlsplit(spec["url"])
    host = str(parts.hostname)
    now = int(time.time())
    scripts = [_prepare(spec, script, now) for script in spec["scripts"]]
    timeout = float(spec.get("timeout", 5))
    give_up = time.monotonic() + float(spec.get("max_seconds", 60))
    answers: list[list[dict]] = [[] for _ in scripts]
    barrier = threading.Barrier(max(1, len(scripts)))

    def worker(k: int) -> None:
        barrier.wait()
        for request in scripts[k]:
            if time.monotonic() > give_up:
                answers[k].append({"latency": None, "acked_at": None, "error": "batch time limit"})
                continue
            answers[k].append(_send(host, parts.port, parts.path, request, timeout))

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(len(scripts))]
    wall = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = [a for script in answers for a in script]
    return {
        "latencies": [a["latency"] for a in flat if a["error"] is None],
        "errors": [a["error"] for a in flat if a["error"] is not None],
        "wall": time.perf_counter() - wall,
        "scripts": answers,
    }


def main() -> int:
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            answer = run(json.loads(line))
        except Exception as exc:
            answer = {"latencies": [], "errors": [f"loadgen: {exc!r}"], "wall": 0.0}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
