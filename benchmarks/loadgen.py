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


def run(spec: dict) -> dict:
    parts = urlsplit(spec["url"])
    if parts.hostname != "127.0.0.1":
        raise ValueError("the load generator only talks to 127.0.0.1")
    now = int(time.time())
    prepared = []
    for r in spec["requests"]:
        body = slash_body(
            r["text"], user_id=r["user"], channel_id=r["channel"], response_url=r["response_url"]
        )
        headers = sign(spec["secret"], body, now)
        headers["Content-Length"] = str(len(body))
        prepared.append((body, headers))
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    index = iter(range(len(prepared)))
    concurrency = max(1, min(int(spec["concurrency"]), len(prepared)))
    barrier = threading.Barrier(concurrency)
    timeout = float(spec.get("timeout", 5))
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
            body, headers = prepared[i]
            start = time.perf_counter()
            try:
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
                conn.request("POST", parts.path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                conn.close()
                elapsed = time.perf_counter() - start
                with lock:
                    if response.status == 200:
                        latencies.append(elapsed)
                    else:
                        errors.append(f"HTTP {response.status}")
            except Exception as exc:  # a timeout or refused connection is a result too
                with lock:
                    errors.append(type(exc).__name__)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    wall = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"latencies": latencies, "errors": errors, "wall": time.perf_counter() - wall}


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
