"""End-to-end cost of telemetry: the same closed-loop load (C concurrent clients sending
non-streaming completions for D seconds) against inferd servers started with telemetry off,
local, and otlp (ratio 1.0, exporting to a live OTLP receiver). Prints requests/s and latency
percentiles per mode and the change against `off`.

Usage: python telemetry_overhead.py --url-off URL --url-local URL --url-otlp URL [--seconds D]
The servers must all be running (scripts/bench/telemetry-overhead.sh starts them).
"""

import argparse
import http.client
import json
import statistics
import threading
import time
import urllib.parse

BODY = json.dumps({"model": "smollm2-135m", "prompt": "The capital of France is",
                   "max_tokens": 4, "temperature": 0, "ignore_eos": True})


def worker(url, deadline, latencies, errors):
    parsed = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=120)
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        conn.request("POST", "/v1/completions", BODY, {"content-type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        if resp.status == 200:
            latencies.append(time.perf_counter() - start)
        else:
            errors.append(resp.status)
    conn.close()


def run(url, seconds, clients):
    latencies, errors = [], []
    deadline = time.perf_counter() + seconds
    threads = [threading.Thread(target=worker, args=(url, deadline, latencies, errors))
               for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000
    return {"rps": len(latencies) / elapsed, "p50_ms": pick(0.5), "p99_ms": pick(0.99),
            "mean_ms": statistics.mean(latencies) * 1000, "requests": len(latencies),
            "errors": len(errors)}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--url-off", required=True)
    ap.add_argument("--url-local", required=True)
    ap.add_argument("--url-otlp", required=True)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    modes = {"off": args.url_off, "local": args.url_local, "otlp": args.url_otlp}
    for url in modes.values():
        run(url, 2, 1)  # warm-up
    results = {m: [] for m in modes}
    # Interleave rounds so drift in machine load hits every mode alike.
    for _ in range(args.rounds):
        for mode, url in modes.items():
            results[mode].append(run(url, args.seconds, args.clients))
    base = statistics.mean(r["rps"] for r in results["off"])
    print(f"clients={args.clients} seconds={args.seconds} rounds={args.rounds} "
          f"(completion, 4 output tokens)")
    print(f"{'mode':8}{'req/s':>10}{'vs off':>10}{'mean ms':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
    for mode, runs in results.items():
        rps = statistics.mean(r["rps"] for r in runs)
        print(f"{mode:8}{rps:>10.2f}{(rps / base - 1):>+10.1%}"
              f"{statistics.mean(r['mean_ms'] for r in runs):>10.1f}"
              f"{statistics.mean(r['p50_ms'] for r in runs):>10.1f}"
              f"{statistics.mean(r['p99_ms'] for r in runs):>10.1f}"
              f"{sum(r['errors'] for r in runs):>8}")


if __name__ == "__main__":
    main()
