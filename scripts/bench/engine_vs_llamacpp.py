"""Single-stream decode speed and time to first token: inferd (over HTTP, streaming) against
llama.cpp itself (llama-cpp-python, in-process) on the same GGUF file, prompt, thread count
and greedy decoding, in one run. Prints a side-by-side table; --json writes the figures.

inferd is measured from the client's side of a real HTTP/SSE stream, so its figures include
HTTP, JSON and SSE overhead that llama-cpp-python, called in-process, does not pay.
"""

import argparse
import http.client
import json
import statistics
import sys
import time
import urllib.parse

PROMPT = (
    "The history of the printing press begins in the fifteenth century, when Johannes "
    "Gutenberg combined movable metal type, oil-based ink and a wooden screw press into a "
    "system that could produce books far faster than scribes. Within fifty years presses "
    "were running in more than two hundred European cities, and the cost of books fell so "
    "far that reading spread well beyond monasteries and universities. Describe what happened next:"
)


def measure_inferd(url, max_tokens):
    """One streaming completion; returns (ttft_s, decode_tok_per_s, completion_tokens)."""
    parsed = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=600)
    body = json.dumps({
        "model": "smollm2-135m", "prompt": PROMPT, "max_tokens": max_tokens,
        "temperature": 0, "ignore_eos": True, "stream": True,
        "stream_options": {"include_usage": True},
    })
    start = time.perf_counter()
    conn.request("POST", "/v1/completions", body, {"content-type": "application/json"})
    resp = conn.getresponse()
    if resp.status != 200:
        sys.exit(f"inferd answered {resp.status}: {resp.read()[:500]!r}")
    first = last = None
    usage = None
    for raw in resp:
        line = raw.decode().strip()
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            break
        chunk = json.loads(data)
        if chunk.get("usage"):
            usage = chunk["usage"]
        if chunk.get("choices") and chunk["choices"][0].get("text"):
            now = time.perf_counter()
            first = first or now
            last = now
    conn.close()
    n = usage["completion_tokens"]
    return first - start, (n - 1) / (last - first), n, usage["prompt_tokens"]


def measure_llamacpp(llm, max_tokens):
    tokens = llm.tokenize(PROMPT.encode(), add_bos=True, special=True)
    llm.reset()  # no prompt-prefix reuse between runs
    start = time.perf_counter()
    first = last = None
    n = 0
    for _ in llm.generate(tokens, top_k=1, temp=0.0, reset=True):
        now = time.perf_counter()
        first = first or now
        last = now
        n += 1
        if n == max_tokens:
            break
    return first - start, (n - 1) / (last - first), n, len(tokens)


def summarize(runs):
    ttft = statistics.median(r[0] for r in runs)
    tps = statistics.median(r[1] for r in runs)
    return {"ttft_ms": ttft * 1000, "decode_tok_s": tps,
            "completion_tokens": runs[0][2], "prompt_tokens": runs[0][3]}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--url", required=True, help="inferd base URL, e.g. http://127.0.0.1:8080")
    ap.add_argument("--model", required=True, help="the GGUF file inferd serves")
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--ctx-size", type=int, default=8192)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", help="write the figures to this file")
    args = ap.parse_args()

    from llama_cpp import Llama

    llm = Llama(model_path=args.model, n_ctx=args.ctx_size, n_threads=args.threads,
                n_threads_batch=args.threads, n_batch=512, verbose=False)
    # Warm both up once (page cache, first-call allocations), then alternate runs so that
    # background noise hits both sides alike.
    measure_inferd(args.url, 8)
    measure_llamacpp(llm, 8)
    ours, theirs = [], []
    for _ in range(args.runs):
        ours.append(measure_inferd(args.url, args.max_tokens))
        theirs.append(measure_llamacpp(llm, args.max_tokens))
    a, b = summarize(ours), summarize(theirs)
    print(f"threads={args.threads} prompt_tokens={a['prompt_tokens']}/{b['prompt_tokens']} "
          f"completion_tokens={args.max_tokens} runs={args.runs} (medians)")
    print(f"{'':24}{'inferd (HTTP)':>16}{'llama-cpp-python':>18}{'inferd/llama.cpp':>18}")
    print(f"{'decode tokens/s':24}{a['decode_tok_s']:>16.1f}{b['decode_tok_s']:>18.1f}"
          f"{a['decode_tok_s'] / b['decode_tok_s']:>17.1%}")
    print(f"{'time to first token ms':24}{a['ttft_ms']:>16.1f}{b['ttft_ms']:>18.1f}"
          f"{a['ttft_ms'] / b['ttft_ms']:>17.1%}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"inferd": a, "llama_cpp_python": b, "threads": args.threads,
                       "runs": args.runs}, f, indent=2)


if __name__ == "__main__":
    main()
