"""Table of the gateway overhead runs written by gateway-overhead.sh.

Input lines: `label=L round=R path=P requests=N duration_us=D p50_us=.. p90_us=.. p99_us=..
mean_us=.. non2xx=.. connect_err=.. read_err=.. write_err=.. timeouts=..` (one per wrk run).
Per path: requests/s (mean over rounds, and its range), p50 and p99 (median over rounds);
CPU time per request of the stand-in and of the gateway process (all threads, children too),
which does not depend on what else shares the machine; for every path but `direct`: throughput ratio to direct (median of the per-round ratios, each
against the same round's direct run) and the added p50/p99 over direct. Targets (issue #6):
through inferd >= 0.8x direct throughput, added p50 <= 0.3 ms.
"""

import statistics
import sys
from collections import defaultdict

TARGET_RATIO = 0.8
TARGET_ADDED_P50_MS = 0.3


def parse(path: str):
    runs = []
    with open(path) as f:
        for line in f:
            fields = dict(part.split("=", 1) for part in line.split())
            run = {k: fields[k] for k in ("label", "path")}
            run["round"] = int(fields["round"])
            for k, v in fields.items():
                if k not in run:
                    run[k] = float(v)
            run["rps"] = run["requests"] / (run["duration_us"] / 1e6)
            run["errors"] = sum(run[k] for k in ("non2xx", "connect_err", "read_err", "write_err", "timeouts"))
            runs.append(run)
    return runs


def table(label: str, runs) -> list[str]:
    by_path = defaultdict(list)
    for run in runs:
        by_path[run["path"]].append(run)
    direct = {r["round"]: r for r in by_path.get("direct", [])}
    out = []
    header = (
        f"{'path':<13} {'req/s':>9} {'(min-max)':>15} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'x direct':>9} {'+p50 ms':>8} {'+p99 ms':>8} {'gw CPU us/req':>13} {'up CPU us/req':>13} {'errors':>6}"
    )
    out.append(header)
    out.append("-" * len(header))
    base = None
    verdicts = []
    for path, rs in by_path.items():
        rps = statistics.mean(r["rps"] for r in rs)
        p50 = statistics.median(r["p50_us"] for r in rs) / 1e3
        p99 = statistics.median(r["p99_us"] for r in rs) / 1e3
        spread = f"({min(r['rps'] for r in rs):.0f}-{max(r['rps'] for r in rs):.0f})"
        errors = int(sum(r["errors"] for r in rs))
        requests = sum(r["requests"] for r in rs)
        gw_cpu = sum(r.get("gw_cpu_us", 0) for r in rs) / requests
        up_cpu = sum(r.get("standin_cpu_us", 0) for r in rs) / requests
        cpu = f"{'-' if path == 'direct' else f'{gw_cpu:.0f}':>13} {up_cpu:13.0f}"
        if path == "direct":
            base = (p50, p99)
            extra = f"{'1.00':>9} {'':>8} {'':>8}"
        elif base is not None:
            ratios = [r["rps"] / direct[r["round"]]["rps"] for r in rs if r["round"] in direct]
            ratio = statistics.median(ratios)
            added50 = statistics.median(
                (r["p50_us"] - direct[r["round"]]["p50_us"]) / 1e3 for r in rs if r["round"] in direct
            )
            added99 = statistics.median(
                (r["p99_us"] - direct[r["round"]]["p99_us"]) / 1e3 for r in rs if r["round"] in direct
            )
            extra = f"{ratio:9.2f} {added50:+8.3f} {added99:+8.3f}"
            if path.startswith("inferd"):
                verdicts.append(
                    f"  {path}: throughput {ratio:.2f}x direct "
                    f"({'meets' if ratio >= TARGET_RATIO else 'MISSES'} >= {TARGET_RATIO}x); "
                    f"added p50 {added50:+.3f} ms "
                    f"({'meets' if added50 <= TARGET_ADDED_P50_MS else 'MISSES'} <= {TARGET_ADDED_P50_MS} ms)"
                )
        else:
            extra = ""
        out.append(f"{path:<13} {rps:9.0f} {spread:>15} {p50:8.3f} {p99:8.3f} {extra} {cpu} {errors:6d}")
    out.append(f"targets ({label}):")
    out.extend(verdicts)
    return out


def main() -> int:
    runs = parse(sys.argv[1])
    labels = []
    for run in runs:
        if run["label"] not in labels:
            labels.append(run["label"])
    for label in labels:
        rs = [r for r in runs if r["label"] == label]
        rounds = max(r["round"] for r in rs)
        print(
            f"== {label} ({rounds} interleaved rounds; req/s mean over rounds; p50/p99 and the "
            f"ratios/added latency: median over rounds, each round against that round's direct run)"
        )
        print("\n".join(table(label, rs)))
        print()
    print("per run (req/s):")
    for label in labels:
        for path in dict.fromkeys(r["path"] for r in runs if r["label"] == label):
            values = [f"{r['rps']:.0f}" for r in runs if r["label"] == label and r["path"] == path]
            print(f"  {label:<9} {path:<13} {' '.join(values)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
