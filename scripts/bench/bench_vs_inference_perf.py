"""Runs `inferd bench` and inference-perf with the same load against one server and prints
their figures and CPU side by side (driven by bench-vs-inference-perf.sh)."""

import argparse
import glob
import json
import os
import resource
import subprocess
import sys
import time


def run_measured(cmd, env=None, log=None):
    """Runs cmd to completion; returns (wall s, CPU s of it and its children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    with open(log, "w") if log else open(os.devnull, "w") as out:
        proc = subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        if log:
            sys.stderr.write(open(log).read()[-4000:])
        sys.exit(f"{cmd[0]} failed with exit code {proc.returncode}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def inferd_figures(path):
    stage = json.load(open(path))["stages"][0]
    pick = lambda s: {k: s[k] for k in ("mean", "p50", "p90", "p99")} if s else None
    return {
        "requests": stage["completed"],
        "failed": stage["failed"],
        "ttft": pick(stage["ttft"]),
        "tpot": pick(stage["tpot"]),
        "itl": pick(stage["itl"]),
        "e2e": pick(stage["e2e"]),
        "output_tokens_per_s": stage["output_tokens_per_s"],
        "input_tokens_per_s": stage["input_tokens_per_s"],
        "requests_per_s": stage["request_rate"],
        "schedule_lag_p99": stage["schedule_lag"]["p99"],
        "mean_input_tokens": stage["input_tokens"] / max(stage["completed"], 1),
        "mean_output_tokens": stage["output_tokens"] / max(stage["completed"], 1),
    }


def inference_perf_figures(directory):
    files = glob.glob(os.path.join(directory, "**", "summary_lifecycle_metrics.json"), recursive=True)
    if not files:
        sys.exit(f"inference-perf wrote no summary_lifecycle_metrics.json under {directory}")
    summary = json.load(open(files[0]))
    ok = summary["successes"]
    lat = ok["latency"]
    pick = lambda s: {"mean": s["mean"], "p50": s["median"], "p90": s["p90"], "p99": s["p99"]} if s else None
    prompt = ok.get("prompt_len") or {}
    output = ok.get("output_len") or {}
    return {
        "requests": ok["count"],
        "failed": summary.get("failures", {}).get("count", 0),
        "ttft": pick(lat["time_to_first_token"]),
        "tpot": pick(lat["time_per_output_token"]),
        "itl": pick(lat["inter_token_latency"]),
        "e2e": pick(lat["request_latency"]),
        "output_tokens_per_s": ok["throughput"]["output_tokens_per_sec"],
        "input_tokens_per_s": ok["throughput"]["input_tokens_per_sec"],
        "requests_per_s": ok["throughput"]["requests_per_sec"],
        "schedule_lag_p99": (summary.get("load_summary") or {}).get("schedule_delay", {}).get("p99"),
        "mean_input_tokens": prompt.get("mean"),
        "mean_output_tokens": output.get("mean"),
    }


def inference_perf_config(args, out_dir):
    dist = lambda n: {"min": n, "max": n, "mean": n, "std_dev": 0}
    if args.concurrency:
        load = {"type": "concurrent",
                "stages": [{"num_requests": args.requests, "concurrency_level": args.concurrency}]}
    else:
        load = {"type": "constant", "stages": [{"rate": args.rate, "duration": args.duration}]}
    load["num_workers"] = 1
    return {
        "load": load,
        "api": {"type": "completion", "streaming": True},
        "server": {
            "type": "vllm",
            "model_name": "smollm2-135m",
            "base_url": args.url,
            "ignore_eos": True,
        },
        "tokenizer": {"pretrained_model_name_or_path": os.path.abspath(args.tokenizer)},
        "data": {
            "type": "random",
            "input_distribution": dist(args.input_tokens),
            "output_distribution": dist(args.output_tokens),
        },
        "report": {"request_lifecycle": {"summary": True, "per_stage": True, "per_request": False}},
        "storage": {"local_storage": {"path": os.path.abspath(out_dir)}},
    }


def run_inferd(args, work, round_no):
    report = os.path.join(work, f"inferd-bench-{round_no}.json")
    cmd = [
        args.inferd, "bench", "--url", args.url, "--model", "smollm2-135m",
        "--api", "completions",
    ] + (["--concurrency", str(args.concurrency), "--requests", str(args.requests)] if args.concurrency
         else ["--rate", str(args.rate), "--duration", f"{args.duration}s"]) + [
        "--input-tokens", str(args.input_tokens), "--output-tokens", str(args.output_tokens),
        "--ignore-eos", "--no-progress", "--output", report,
    ]
    wall, cpu = run_measured(cmd, log=os.path.join(work, f"inferd-bench-{round_no}.log"))
    return inferd_figures(report), wall, cpu


def run_inference_perf(args, work, round_no):
    out_dir = os.path.join(work, f"inference-perf-{round_no}")
    os.makedirs(out_dir, exist_ok=True)
    config = os.path.join(work, f"inference-perf-{round_no}.yml")
    # JSON is YAML.
    json.dump(inference_perf_config(args, out_dir), open(config, "w"), indent=2)
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    wall, cpu = run_measured(
        [args.inference_perf, "--config_file", config], env=env,
        log=os.path.join(work, f"inference-perf-{round_no}.log"))
    return inference_perf_figures(out_dir), wall, cpu


def fmt(v, scale=1.0, digits=1):
    return "-" if v is None else f"{v * scale:.{digits}f}"


def diff(a, b):
    if a is None or b is None or b == 0:
        return "-"
    return f"{(a - b) / b * 100:+.1f}%"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--inferd", required=True)
    p.add_argument("--inference-perf", required=True)
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--rate", type=float, default=1.0)
    p.add_argument("--duration", type=int, default=30)
    p.add_argument("--concurrency", type=int, default=0, help="closed loop instead of --rate")
    p.add_argument("--requests", type=int, default=40, help="requests at --concurrency")
    p.add_argument("--input-tokens", type=int, default=64)
    p.add_argument("--output-tokens", type=int, default=32)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--work", required=True)
    args = p.parse_args()
    os.makedirs(args.work, exist_ok=True)

    results = {"inferd bench": [], "inference-perf": []}
    for r in range(args.rounds):
        order = [("inferd bench", run_inferd), ("inference-perf", run_inference_perf)]
        if r % 2 == 1:
            order.reverse()
        for name, fn in order:
            print(f"round {r + 1}: {name} ...", file=sys.stderr, flush=True)
            results[name].append(fn(args, args.work, r))

    load = (f"concurrency {args.concurrency}, {args.requests} requests" if args.concurrency
            else f"constant {args.rate}/s for {args.duration}s")
    print(f"\nload: {load}, /v1/completions streaming, "
          f"{args.input_tokens} input / {args.output_tokens} output tokens, ignore_eos; {args.url}")
    for r in range(args.rounds):
        (a, a_wall, a_cpu), (b, b_wall, b_cpu) = results["inferd bench"][r], results["inference-perf"][r]
        print(f"\nround {r + 1}{'':<26}{'inferd bench':>14}{'inference-perf':>16}{'difference':>12}")
        rows = [("requests completed", a["requests"], b["requests"], 1, 0),
                ("requests failed", a["failed"], b["failed"], 1, 0),
                ("mean input tokens", a["mean_input_tokens"], b["mean_input_tokens"], 1, 1),
                ("mean output tokens", a["mean_output_tokens"], b["mean_output_tokens"], 1, 1)]
        for fig in ("ttft", "tpot", "itl", "e2e"):
            for stat in ("mean", "p50", "p90", "p99"):
                av = a[fig][stat] if a[fig] else None
                bv = b[fig][stat] if b[fig] else None
                rows.append((f"{fig} {stat} (ms)", av, bv, 1000.0, 2))
        rows += [("output tokens/s", a["output_tokens_per_s"], b["output_tokens_per_s"], 1, 2),
                 ("input tokens/s", a["input_tokens_per_s"], b["input_tokens_per_s"], 1, 2),
                 ("requests/s", a["requests_per_s"], b["requests_per_s"], 1, 3),
                 ("schedule lag p99 (ms)", a["schedule_lag_p99"], b["schedule_lag_p99"], 1000.0, 2),
                 ("generator wall time (s)", a_wall, b_wall, 1, 1),
                 ("generator CPU (s)", a_cpu, b_cpu, 1, 2),
                 ("CPU ms per request", a_cpu / max(a["requests"], 1), b_cpu / max(b["requests"], 1), 1000.0, 2)]
        for label, av, bv, scale, digits in rows:
            print(f"  {label:<30}{fmt(av, scale, digits):>14}{fmt(bv, scale, digits):>16}{diff(av, bv):>12}")
    json.dump(results, open(os.path.join(args.work, "results.json"), "w"), indent=2)


if __name__ == "__main__":
    main()
