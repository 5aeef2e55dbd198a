#!/usr/bin/env python3
"""Interactive TTFT with and without a batch running, against one inferd (stdlib only).

Each round runs the interactive load alone (phase "alone"), then uploads a batch of long lines,
waits until its first line is done, runs the same load again (phase "batch") and cancels the
batch. The interactive load is --requests streamed chat requests, --clients at a time; TTFT is
the time from sending to the first SSE chunk with text. Prints p50/p95 of both phases, their
ratio, and how many batch lines finished during the "batch" phases.
"""

import argparse
import json
import statistics
import threading
import time
import urllib.request
import uuid


def post_json(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.load(r)


def get_json(url):
    with urllib.request.urlopen(url, timeout=60) as r:
        return json.load(r)


def ttft(base, max_tokens, n):
    body = {"model": "smollm2-135m", "stream": True, "max_tokens": max_tokens, "ignore_eos": True,
            "temperature": 0,
            "messages": [{"role": "user", "content": f"Tell me a story about lighthouse {n}."}]}
    req = urllib.request.Request(base + "/v1/chat/completions", data=json.dumps(body).encode(),
                                 method="POST", headers={"content-type": "application/json"})
    start = time.perf_counter()
    first = None
    with urllib.request.urlopen(req, timeout=600) as r:
        for raw in r:
            line = raw.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            choices = chunk.get("choices") or []
            if first is None and choices and (choices[0].get("delta") or {}).get("content"):
                first = time.perf_counter() - start
    if first is None:
        raise RuntimeError("a stream ended without text")
    return first


def load(base, clients, requests, max_tokens):
    out, lock, next_n = [], threading.Lock(), iter(range(requests))

    def client():
        while True:
            with lock:
                n = next(next_n, None)
            if n is None:
                return
            t = ttft(base, max_tokens, n)
            with lock:
                out.append(t)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def upload_batch(base, lines, max_tokens):
    boundary = uuid.uuid4().hex
    rows = []
    for i in range(lines):
        rows.append(json.dumps({"custom_id": f"line-{i}", "method": "POST", "url": "/v1/chat/completions",
                                "body": {"model": "smollm2-135m", "max_tokens": max_tokens, "ignore_eos": True,
                                         "messages": [{"role": "user", "content": f"Write an essay, part {i}."}]}}))
    content = ("\n".join(rows) + "\n").encode()
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"b.jsonl\"\r\n"
            f"Content-Type: application/jsonl\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(base + "/v1/files", data=body, method="POST",
                                 headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(req, timeout=60) as r:
        file_id = json.load(r)["id"]
    return post_json(base + "/v1/batches", {"input_file_id": file_id, "endpoint": "/v1/chat/completions",
                                            "completion_window": "24h"})["id"]


def done(base, batch):
    counts = get_json(f"{base}/v1/batches/{batch}")["request_counts"]
    return counts["completed"] + counts["failed"]


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--url", required=True)
    p.add_argument("--clients", type=int, default=2)
    p.add_argument("--requests", type=int, default=12)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch-lines", type=int, default=200)
    p.add_argument("--batch-max-tokens", type=int, default=64)
    p.add_argument("--max-tokens", type=int, default=32)
    a = p.parse_args()
    base = a.url.rstrip("/")
    load(base, a.clients, a.clients, a.max_tokens)  # warm-up
    alone, during, lines_during, seconds_during = [], [], 0, 0.0
    for r in range(a.rounds):
        alone += load(base, a.clients, a.requests, a.max_tokens)
        batch = upload_batch(base, a.batch_lines, a.batch_max_tokens)
        deadline = time.time() + 300
        while done(base, batch) == 0:
            if time.time() > deadline:
                raise RuntimeError("the batch never started")
            time.sleep(0.1)
        before, t0 = done(base, batch), time.perf_counter()
        during += load(base, a.clients, a.requests, a.max_tokens)
        seconds_during += time.perf_counter() - t0
        lines_during += done(base, batch) - before
        post_json(f"{base}/v1/batches/{batch}/cancel", {})
        while get_json(f"{base}/v1/batches/{batch}")["status"] != "cancelled":
            time.sleep(0.1)
        print(f"round {r + 1}: alone p50 {statistics.median(alone) * 1000:.0f} ms, "
              f"with batch p50 {statistics.median(during) * 1000:.0f} ms", flush=True)
    print(f"\ninteractive TTFT over {len(alone)} requests a phase ({a.clients} clients, {a.max_tokens} tokens):")
    print(f"{'':14}{'p50 ms':>10}{'p95 ms':>10}")
    for name, v in (("alone", alone), ("with batch", during)):
        print(f"{name:14}{pct(v, 0.5) * 1000:10.0f}{pct(v, 0.95) * 1000:10.0f}")
    print(f"{'ratio':14}{pct(during, 0.5) / pct(alone, 0.5):10.2f}{pct(during, 0.95) / pct(alone, 0.95):10.2f}")
    print(f"batch lines finished during the interactive load: {lines_during} "
          f"({lines_during / seconds_during:.2f} lines/s of {a.batch_max_tokens} tokens)")


if __name__ == "__main__":
    main()
