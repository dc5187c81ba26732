#!/usr/bin/env python3
"""Login flood: N concurrent logins against a running orgboard, spread over
several loopback source addresses (so each stays within its per-address rate
limit), for unknown emails (which are hashed too, for timing). Reports the
answers by status, latency percentiles, whether every refusal carried
Retry-After, and the server's peak resident memory (VmHWM) and current RSS.

Only loopback addresses are used (127.0.0.0/8). Standard library only.

    python3 bench/abuse/login_flood.py --url http://127.0.0.1:8080 --pid PID
"""
import argparse
import http.client
import json
import threading
import time
import uuid
from collections import Counter
from urllib.parse import urlparse


def mem_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/{pid}/status")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--concurrency", type=int, default=300)
    ap.add_argument("--sources", type=int, default=10)
    ap.add_argument("--timeout", type=float, default=60.0)
    a = ap.parse_args()
    u = urlparse(a.url)
    assert u.hostname in ("127.0.0.1", "localhost"), "loopback targets only"
    port = u.port or 80

    rss_before = mem_kib(a.pid, "VmRSS")
    peak = [rss_before]
    done = threading.Event()

    def sample():
        while not done.is_set():
            try:
                peak[0] = max(peak[0], mem_kib(a.pid, "VmRSS"))
            except (OSError, RuntimeError):
                return
            time.sleep(0.02)

    results = []
    lock = threading.Lock()
    barrier = threading.Barrier(a.concurrency)

    def one(i):
        src = f"127.0.0.{2 + i % a.sources}"
        body = json.dumps({"email": f"flood-{uuid.uuid4().hex}@example.com",
                           "password": "not the right password"})
        barrier.wait()
        t0 = time.perf_counter()
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=a.timeout,
                                           source_address=(src, 0))
            c.request("POST", "/api/v1/auth/login", body,
                      {"Content-Type": "application/json"})
            r = c.getresponse()
            r.read()
            status, retry = r.status, r.getheader("Retry-After")
            c.close()
        except Exception as e:  # noqa: BLE001 - every failure is reported
            status, retry = f"error:{type(e).__name__}", None
        with lock:
            results.append((status, retry, time.perf_counter() - t0))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(a.concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    time.sleep(0.5)
    done.set()
    sampler.join()

    by_status = Counter(r[0] for r in results)
    lat = sorted(r[2] for r in results)
    pct = lambda p: lat[min(len(lat) - 1, int(p / 100 * len(lat)))] * 1000
    refused = [r for r in results if r[0] in (429, 503)]
    refused_lat = sorted(r[2] for r in refused)
    report = {
        "concurrency": a.concurrency,
        "sources": a.sources,
        "wall_s": round(wall, 3),
        "by_status": {str(k): v for k, v in sorted(by_status.items(), key=str)},
        "latency_ms": {"p50": round(pct(50), 1), "p90": round(pct(90), 1),
                       "p99": round(pct(99), 1), "max": round(lat[-1] * 1000, 1)},
        "refused_with_retry_after": sum(1 for r in refused if r[1]),
        "refused": len(refused),
        "refused_p50_ms": round(refused_lat[len(refused_lat) // 2] * 1000, 1) if refused else None,
        "server_rss_before_mib": round(rss_before / 1024, 1),
        "server_rss_peak_sampled_mib": round(peak[0] / 1024, 1),
        "server_vmhwm_mib": round(mem_kib(a.pid, "VmHWM") / 1024, 1),
        "server_rss_after_mib": round(mem_kib(a.pid, "VmRSS") / 1024, 1),
    }
    print(json.dumps(report, indent=2))
    errors = [s for s in by_status if isinstance(s, str) or s >= 500 and s != 503]
    if errors or report["refused_with_retry_after"] != report["refused"]:
        raise SystemExit(f"unexpected answers: {errors}")


if __name__ == "__main__":
    main()
