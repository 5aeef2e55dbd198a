"""Concurrent-stream throughput and latency of one OpenAI-compatible server, and the report that
puts several servers side by side. Stdlib only. Driven by scripts/bench/batching.sh, which starts
the servers one after another on the same GGUF file, threads and total context.

  batching.py run --name NAME --url URL --pid PID --out FILE [--levels 1,4,8] ...
      For each concurrency level C: one warm-up request (not counted), then REQUESTS_PER_STREAM x C
      streaming /v1/chat/completions requests (max_tokens, ignore_eos, temperature 0,
      stream_options.include_usage) pulled by C client threads, each request timed on its own
      clock. Then reads the server's peak RSS (VmHWM in /proc/PID/status) and writes FILE.
  batching.py report FILE... [--json OUT]
      Markdown tables on stdout (per server and level; peak RSS; the target ratios); JSON to OUT.

Per request: TTFT = first content token - request sent; TPOT = (last content token - first)
/ (tokens - 1). Tokens come from the usage chunk when the server sends one, else from the number
of content chunks (one token per chunk). Per level: aggregate tok/s = all output tokens received
/ wall time from the first request sent to the last stream closed. A stream is broken on an HTTP
error, a connection error, a stream that ends without [DONE], or fewer tokens than asked from a
server that honours ignore_eos; from one that does not (--no-ignore-eos) it is counted as short.
Each level also records how many cores processes other than the server and this driver kept busy
(from /proc/stat): on a 2-core machine a build running alongside halves a server's speed, and the
report flags the levels where that happened.
"""

import argparse
import http.client
import json
import os
import queue
import sys
import threading
import time
import urllib.parse

TOPICS = [
    "the history of the printing press", "how volcanoes form", "the life cycle of a star",
    "why the sky is blue", "the invention of the telephone", "how bees make honey",
    "the water cycle", "the causes of the French Revolution", "how a bicycle stays upright",
    "the migration of monarch butterflies", "how bread rises", "the building of the pyramids",
    "how vaccines train the immune system", "the rules of chess", "how tides work",
    "the Silk Road", "how a compass works", "the discovery of penicillin",
    "how rainbows form", "the first flight of the Wright brothers", "how coral reefs grow",
    "the Roman aqueducts", "how earthquakes are measured", "the invention of paper",
    "how plants turn light into food", "the voyage of Magellan", "how glaciers move",
    "the story of the Olympic Games", "how a steam engine works", "the Great Wall of China",
    "how whales communicate", "the invention of the light bulb", "how deserts form",
    "the history of coffee", "how the heart pumps blood", "the first moon landing",
    "how clouds form", "the invention of the bicycle", "how ants organise a colony",
    "the history of the Internet", "how salt is made from the sea", "the Renaissance in Italy",
    "how owls hunt at night", "the history of tea", "how batteries store energy",
    "the voyages of the Vikings", "how mountains are made", "the invention of the clock",
]
STYLES = ["Write a long essay about {}.", "Explain in detail {}.", "Tell me a long story about {}.",
          "Describe at length {}."]


def prompt(i):
    """A different short user prompt for request i (the same sequence for every server)."""
    return STYLES[(i // len(TOPICS)) % len(STYLES)].format(TOPICS[i % len(TOPICS)])


def one_request(url, model, text, max_tokens, timeout, min_tokens=False):
    """One streaming chat completion, timed on its own clock."""
    parsed = urllib.parse.urlparse(url)
    body = {
        "model": model, "messages": [{"role": "user", "content": text}],
        "max_tokens": max_tokens, "temperature": 0, "ignore_eos": True, "stream": True,
        "stream_options": {"include_usage": True},
    }
    if min_tokens:  # llama-cpp-python: no ignore_eos, but min_tokens masks EOS until then
        body["min_tokens"] = max_tokens
    body = json.dumps(body)
    r = {"start": None, "first": None, "last": None, "end": None, "chunks": 0, "usage": None,
         "done": False, "finish_reason": None, "error": None, "status": None}
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=timeout)
    r["start"] = time.perf_counter()
    try:
        conn.request("POST", "/v1/chat/completions", body, {"content-type": "application/json"})
        resp = conn.getresponse()
        r["status"] = resp.status
        if resp.status != 200:
            r["error"] = f"HTTP {resp.status}: {resp.read()[:300]!r}"
            return r
        for raw in resp:
            line = raw.decode("utf-8", "replace").strip()
            if line.startswith("error:"):
                r["error"] = line[:300]
                break
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                r["done"] = True
                break
            chunk = json.loads(data)
            if chunk.get("error"):
                r["error"] = str(chunk["error"])[:300]
                break
            if chunk.get("usage"):
                r["usage"] = chunk["usage"]
            for choice in chunk.get("choices") or []:
                if choice.get("finish_reason"):
                    r["finish_reason"] = choice["finish_reason"]
                if (choice.get("delta") or {}).get("content"):
                    now = time.perf_counter()
                    r["first"] = r["first"] or now
                    r["last"] = now
                    r["chunks"] += 1
    except Exception as e:  # connection reset, timeout, bad JSON: a broken stream
        r["error"] = f"{type(e).__name__}: {e}"[:300]
    finally:
        r["end"] = time.perf_counter()
        conn.close()
    return r


def judge(r, max_tokens, honours_ignore_eos):
    """Adds tokens, token source, ttft, tpot, broken/short to a finished request."""
    usage_n = (r["usage"] or {}).get("completion_tokens")
    r["tokens"] = usage_n if isinstance(usage_n, int) else r["chunks"]
    r["source"] = "usage" if isinstance(usage_n, int) else "stream"
    r["ttft"] = r["first"] - r["start"] if r["first"] else None
    r["tpot"] = ((r["last"] - r["first"]) / (r["tokens"] - 1)
                 if r["first"] and r["tokens"] > 1 else None)
    cut = r["error"] is not None or not r["done"]
    few = r["tokens"] < max_tokens
    r["broken"] = cut or (few and honours_ignore_eos)
    r["short"] = few and not r["broken"]
    r["why"] = (r["error"] or ("stream ended without [DONE]" if not r["done"] else None)
                or (f"fewer tokens than asked ({r['tokens']})" if r["broken"] else None))
    return r


def percentile(values, p):
    """Linear interpolation between closest ranks (p in 0..100); None when empty."""
    v = sorted(x for x in values if x is not None)
    if not v:
        return None
    k = (len(v) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def cpu_ticks(pid):
    """(busy ticks of the whole machine, ticks of process pid, ticks of this process)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    busy = sum(v) - v[3] - v[4]  # all but idle and iowait
    server = 0
    if pid:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            server = int(fields[11]) + int(fields[12])  # utime + stime, all its threads
        except OSError:
            pass
    t = os.times()
    return busy, server, (t.user + t.system) * os.sysconf("SC_CLK_TCK")


def other_cores(before, after, wall):
    """Cores kept busy by processes other than the server and this driver: noise."""
    busy, server, me = (a - b for a, b in zip(after, before))
    slack = 3  # each of the three counters is rounded to a tick
    return (max(0.0, (busy - server - me - slack) / os.sysconf("SC_CLK_TCK") / wall)
            if wall > 0 else None)


def run_level(args, concurrency, next_index):
    """Warm-up, then REQUESTS_PER_STREAM x concurrency requests over `concurrency` threads."""
    warm = judge(one_request(args.url, args.model_name, prompt(next_index), args.max_tokens,
                             args.timeout, args.min_tokens), args.max_tokens, args.ignore_eos)
    next_index += 1
    n = args.requests_per_stream * concurrency
    todo = queue.Queue()
    for i in range(n):
        todo.put(next_index + i)
    results = []
    lock = threading.Lock()

    def worker():
        while True:
            try:
                i = todo.get_nowait()
            except queue.Empty:
                return
            r = judge(one_request(args.url, args.model_name, prompt(i), args.max_tokens,
                                  args.timeout, args.min_tokens), args.max_tokens,
                      args.ignore_eos)
            with lock:
                results.append(r)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    ticks0 = cpu_ticks(args.pid)
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    noise = other_cores(ticks0, cpu_ticks(args.pid), wall)
    tokens = sum(r["tokens"] for r in results)
    sources = {r["source"] for r in results}
    errors = sorted({r["why"] for r in results if r["why"]})
    level = {
        "concurrency": concurrency, "requests": n, "wall_s": wall, "output_tokens": tokens,
        "agg_tok_s": tokens / wall if wall > 0 else None,
        "ttft_p50_ms": ms(percentile([r["ttft"] for r in results], 50)),
        "ttft_p95_ms": ms(percentile([r["ttft"] for r in results], 95)),
        "tpot_p50_ms": ms(percentile([r["tpot"] for r in results], 50)),
        "token_source": sources.pop() if len(sources) == 1 else "mixed",
        "usage_vs_chunks_mismatch": sum(1 for r in results if r["source"] == "usage"
                                        and r["tokens"] != r["chunks"]),
        "broken": sum(r["broken"] for r in results),
        "short": sum(r["short"] for r in results),
        "min_tokens": min((r["tokens"] for r in results), default=0),
        "finish_reasons": sorted({str(r["finish_reason"]) for r in results}),
        "errors": errors[:5],
        "warmup_ok": not warm["broken"],
        "other_cpu_cores": noise,
    }
    return level, next_index + n


def ms(seconds):
    return None if seconds is None else seconds * 1000


def peak_rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def cmd_run(args):
    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    out = {"name": args.name, "url": args.url, "binary": args.binary, "build": args.build,
           "ignore_eos_honoured": args.ignore_eos, "min_tokens_sent": args.min_tokens,
           "max_tokens": args.max_tokens,
           "requests_per_stream": args.requests_per_stream, "threads": args.threads,
           "ctx_size": args.ctx_size, "slots": args.slots, "levels": []}
    index = 0
    for c in levels:
        level, index = run_level(args, c, index)
        out["levels"].append(level)
        print(f"  {args.name}: {c} stream(s): {level['agg_tok_s']:.1f} tok/s, "
              f"TTFT p50 {fmt(level['ttft_p50_ms'])} ms, broken {level['broken']}, "
              f"short {level['short']}, other processes {fmt(level['other_cpu_cores'], '.2f')} "
              f"cores", file=sys.stderr, flush=True)
    out["peak_rss_kib"] = peak_rss_kib(args.pid) if args.pid else None
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)


def fmt(x, spec=".1f"):
    return "n/a" if x is None else format(x, spec)


def ratio(a, b):
    return a / b if a is not None and b else None


def cmd_report(args):
    servers = []
    for path in args.files:
        with open(path) as f:
            servers.append(json.load(f))
    by_name = {s["name"]: s for s in servers}
    first = servers[0]
    print(f"\nmodel {args.model_label}; threads {first['threads']}, total context "
          f"{first['ctx_size']}, slots {first['slots']}; {first['max_tokens']} output tokens per "
          f"request (ignore_eos, temperature 0, streamed); {first['requests_per_stream']} x C "
          f"requests per level after 1 warm-up\n")
    print("| server | streams | requests | agg tok/s | TTFT p50 ms | TTFT p95 ms | TPOT p50 ms "
          "| tokens (source) | broken | short |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    for s in servers:
        for lv in s["levels"]:
            print(f"| {s['name']} | {lv['concurrency']} | {lv['requests']} | {fmt(lv['agg_tok_s'])} "
                  f"| {fmt(lv['ttft_p50_ms'])} | {fmt(lv['ttft_p95_ms'])} "
                  f"| {fmt(lv['tpot_p50_ms'], '.2f')} | {lv['output_tokens']} ({lv['token_source']}) "
                  f"| {lv['broken']} | {lv['short']} |")
    print("\n| server | peak RSS MiB | other load (cores, max) | ignore_eos honoured | build "
          "| binary |")
    print("|---|---:|---:|---|---|---|")
    for s in servers:
        rss = s["peak_rss_kib"] / 1024 if s["peak_rss_kib"] else None
        eos = "yes" if s["ignore_eos_honoured"] else "no"
        if s.get("min_tokens_sent"):
            eos += " (min_tokens sent)"
        noise = max((lv["other_cpu_cores"] or 0 for lv in s["levels"]), default=None)
        print(f"| {s['name']} | {fmt(rss)} | {fmt(noise, '.2f')} | {eos} "
              f"| {s['build'] or ''} | {s['binary'] or ''} |")
    notes = []
    for s in servers:
        for lv in s["levels"]:
            if lv["errors"]:
                notes.append(f"{s['name']} at {lv['concurrency']}: broken: "
                             f"{'; '.join(lv['errors'])}")
            if lv["short"]:
                notes.append(f"{s['name']} at {lv['concurrency']}: {lv['short']} stream(s) ended "
                             f"before {s['max_tokens']} tokens (fewest {lv['min_tokens']}; "
                             f"finish_reason {', '.join(lv['finish_reasons'])}); their tokens count")
            if (lv["other_cpu_cores"] or 0) > args.noise_limit:
                notes.append(f"{s['name']} at {lv['concurrency']}: other processes kept "
                             f"{lv['other_cpu_cores']:.2f} cores busy: these figures are skewed")
            if lv["usage_vs_chunks_mismatch"]:
                notes.append(f"{s['name']} at {lv['concurrency']}: usage and content-chunk counts "
                             f"differ in {lv['usage_vs_chunks_mismatch']} stream(s)")

    def level(name, c):
        s = by_name.get(name)
        return next((lv for lv in s["levels"] if lv["concurrency"] == c), None) if s else None

    def pick(c, key, a, b):
        la, lb = level(a, c), level(b, c)
        return ratio(la and la[key], lb and lb[key])

    all_levels = sorted({lv["concurrency"] for s in servers for lv in s["levels"]})
    lo = 1 if 1 in all_levels else (all_levels[0] if all_levels else None)
    hi = 8 if 8 in all_levels else (all_levels[-1] if all_levels else None)
    rss = {n: (by_name[n]["peak_rss_kib"] if n in by_name else None)
           for n in ("inferd", "llama-server")}
    ratios = {
        f"inferd/llama-server agg tok/s @{lo}": pick(lo, "agg_tok_s", "inferd", "llama-server"),
        f"inferd/llama-server agg tok/s @{hi}": pick(hi, "agg_tok_s", "inferd", "llama-server"),
        f"inferd/llama-server TTFT p50 @{hi}": pick(hi, "ttft_p50_ms", "inferd", "llama-server"),
        f"inferd/llama-cpp-python agg tok/s @{hi}":
            pick(hi, "agg_tok_s", "inferd", "llama-cpp-python"),
        "inferd/llama-server peak RSS": ratio(rss["inferd"], rss["llama-server"]),
    }
    print("\n| ratio (same run) | value |")
    print("|---|---:|")
    for k, v in ratios.items():
        print(f"| {k} | {fmt(v, '.2f')} |")
    if notes:
        print("\nNotes:")
        for n in notes:
            print(f"- {n}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": args.model_label, "servers": servers, "ratios": ratios,
                       "notes": notes}, f, indent=2)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="measure one running server")
    r.add_argument("--name", required=True)
    r.add_argument("--url", required=True, help="base URL, e.g. http://127.0.0.1:8080")
    r.add_argument("--pid", type=int, help="server process, for VmHWM")
    r.add_argument("--out", required=True)
    r.add_argument("--model-name", default="smollm2-135m")
    r.add_argument("--levels", default="1,4,8")
    r.add_argument("--requests-per-stream", type=int, default=3)
    r.add_argument("--max-tokens", type=int, default=64)
    r.add_argument("--timeout", type=float, default=600)
    r.add_argument("--no-ignore-eos", dest="ignore_eos", action="store_false",
                   help="the server does not honour ignore_eos: short streams are not broken")
    r.add_argument("--min-tokens", action="store_true",
                   help="also send min_tokens = max_tokens (llama-cpp-python's stand-in)")
    r.add_argument("--binary", default="")
    r.add_argument("--build", default="")
    r.add_argument("--threads", type=int)
    r.add_argument("--ctx-size", type=int)
    r.add_argument("--slots", type=int)
    p = sub.add_parser("report", help="merge per-server files into tables")
    p.add_argument("files", nargs="+")
    p.add_argument("--json", help="write everything as JSON here")
    p.add_argument("--model-label", default="")
    p.add_argument("--noise-limit", type=float, default=0.1,
                   help="flag levels during which other processes used more cores than this")
    args = ap.parse_args()
    if args.cmd == "run":
        cmd_run(args)
    else:
        cmd_report(args)


if __name__ == "__main__":
    main()
