"""Time to first streamed chunk, sequential requests, for each of several gateway paths.

Each path is NAME=URL[,KEY] where URL is the /v1 base. One keep-alive connection per path
(as an SDK client keeps one); each path gets its warm-up and then its requests in one block,
paths one after the other. (Round-robin across paths would hide delayed-ACK stalls: a
connection that sat idle while the others ran acknowledges at once.) TTFT is the time from
sending the request to reading the first SSE event that carries content text; "first event"
is the time to any first SSE event (an OpenAI stream often starts with an empty role chunk).
The rest of the stream is read to the end ([DONE]) and checked for usage.
Prints median and p99 per path and their difference from the first path.
"""

import argparse
import http.client
import json
import socket
import statistics
import sys
import time
import urllib.parse


class Path:
    def __init__(self, spec: str, model: str, quickack: bool = False):
        self.quickack = quickack and hasattr(socket, "TCP_QUICKACK")
        name, _, rest = spec.partition("=")
        url, _, key = rest.partition(",")
        self.name = name
        parsed = urllib.parse.urlsplit(url)
        self.host, self.port = parsed.hostname, parsed.port or 80
        self.path = parsed.path.rstrip("/") + "/chat/completions"
        self.headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if key:
            self.headers["Authorization"] = f"Bearer {key}"
        self.body = json.dumps(
            {
                "model": model,
                "messages": [{"role": "user", "content": "Say hello."}],
                "max_tokens": 16,
                "temperature": 0,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
        ).encode()
        self.conn = None
        self.ttft: list[float] = []
        self.first_event: list[float] = []
        self.total: list[float] = []
        self.no_usage = 0

    def one(self) -> None:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        start = time.perf_counter()
        self.conn.request("POST", self.path, body=self.body, headers=self.headers)
        response = self.conn.getresponse()
        if response.status != 200:
            raise RuntimeError(f"{self.name}: HTTP {response.status}: {response.read()[:300]!r}")
        first = None
        first_event = None
        done = False
        usage = False
        while True:
            if self.quickack and self.conn.sock is not None:
                # Acknowledge at once (Linux resets this flag, so set it before every read).
                self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
            line = response.readline()
            if not line:
                break
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if first_event is None:
                first_event = time.perf_counter()
            if data == b"[DONE]":
                done = True
                continue
            event = json.loads(data)
            if event.get("usage"):
                usage = True
            if first is None:
                for choice in event.get("choices") or []:
                    text = (choice.get("delta") or {}).get("content") or choice.get("text")
                    if text:
                        first = time.perf_counter()
                        break
        end = time.perf_counter()
        if response.will_close:
            self.conn.close()
            self.conn = None
        if first is None or not done:
            raise RuntimeError(f"{self.name}: stream without content or without [DONE]")
        if not usage:
            self.no_usage += 1
        self.ttft.append(first - start)
        self.first_event.append(first_event - start)
        self.total.append(end - start)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="NAME=URL[,KEY]; the first is the baseline")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--model", default="standin")
    parser.add_argument(
        "--quickack",
        action="store_true",
        help="set TCP_QUICKACK before each read: the client acknowledges every segment at once, "
        "so a server that leaves Nagle on (no TCP_NODELAY) is not stalled by delayed ACKs",
    )
    args = parser.parse_args()
    paths = [Path(spec, args.model, args.quickack) for spec in args.paths]
    for path in paths:
        for _ in range(args.warmup):
            path.one()
        path.ttft.clear()
        path.first_event.clear()
        path.total.clear()
        path.no_usage = 0
        for _ in range(args.requests):
            path.one()

    base = paths[0]
    base_med, base_p99 = statistics.median(base.ttft), pct(base.ttft, 99)
    print(
        f"== streaming TTFT: {args.requests} sequential streamed chat requests per path on one "
        f"keep-alive connection, after {args.warmup} warm-up; milliseconds"
        + ("; client sets TCP_QUICKACK" if args.quickack else "")
    )
    print(
        f"{'path':<13} {'TTFT p50':>9} {'TTFT p99':>9} {'+p50':>8} {'+p99':>8} "
        f"{'1st event p50':>14} {'whole p50':>10} {'no usage':>9}"
    )
    for path in paths:
        med, p99 = statistics.median(path.ttft), pct(path.ttft, 99)
        added = "" if path is base else f"{(med - base_med) * 1e3:+8.3f} {(p99 - base_p99) * 1e3:+8.3f}"
        print(
            f"{path.name:<13} {med * 1e3:9.3f} {p99 * 1e3:9.3f} {added:>17} "
            f"{statistics.median(path.first_event) * 1e3:14.3f} "
            f"{statistics.median(path.total) * 1e3:10.3f} {path.no_usage:9d}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
