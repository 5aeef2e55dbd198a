"""Checks inferd with the official `openai` Python client: chat and text completions,
streaming and not, model listing, error mapping to the client's exception types, the
server's API key (a wrong key is the client's AuthenticationError), and the Files and Batch
API (upload, create, poll, download the output).

Usage: python openai_client_check.py BASE_URL   (e.g. http://127.0.0.1:8080/v1)
Prints one line per check and a closing "openai-client: N passed, M failed" line.
"""

import io
import json
import sys
import time

import openai

MODEL = "smollm2-135m"
# The key scripts/openai-client-check.sh starts the server with.
API_KEY = "sk-openai-client-check"
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def check_models(client):
    ids = [m.id for m in client.models.list()]
    assert MODEL in ids, ids


def check_chat(client):
    r = client.chat.completions.create(model=MODEL, messages=QUESTION, temperature=0, max_tokens=24)
    text = r.choices[0].message.content
    assert "Paris" in text, text
    assert r.choices[0].finish_reason == "stop", r.choices[0].finish_reason
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def check_chat_stream(client):
    whole = client.chat.completions.create(model=MODEL, messages=QUESTION, temperature=0, max_tokens=24)
    stream = client.chat.completions.create(
        model=MODEL, messages=QUESTION, temperature=0, max_tokens=24,
        stream=True, stream_options={"include_usage": True},
    )
    parts, usage, finish = [], None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            parts.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    assert "".join(parts) == whole.choices[0].message.content, ("".join(parts), whole)
    assert finish == "stop", finish
    assert usage is not None and usage.completion_tokens == whole.usage.completion_tokens, usage


def check_completion(client):
    r = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=8, temperature=0)
    assert r.choices[0].text, r
    stream = client.completions.create(
        model=MODEL, prompt="Once upon a time", max_tokens=8, temperature=0, stream=True
    )
    assert "".join(c.choices[0].text for c in stream if c.choices) == r.choices[0].text


def check_errors(client):
    try:
        client.chat.completions.create(model="no-such-model", messages=QUESTION)
        raise AssertionError("unknown model accepted")
    except openai.NotFoundError as e:
        assert e.status_code == 404 and "no-such-model" in str(e), e
    try:
        client.chat.completions.create(model=MODEL, messages=QUESTION, n=2)
        raise AssertionError("n=2 accepted")
    except openai.BadRequestError as e:
        assert e.body["param"] == "n", e.body


def check_api_key(client):
    wrong = openai.OpenAI(base_url=str(client.base_url), api_key="sk-wrong", max_retries=0)
    try:
        wrong.models.list()
        raise AssertionError("a wrong key was accepted")
    except openai.AuthenticationError as e:
        assert e.status_code == 401 and e.code == "invalid_api_key", e


def check_batches(client):
    """50 lines through the Files and Batch API: every custom_id answered once; then a
    second batch cancelled through the client."""
    n = 50
    lines = [
        {"custom_id": f"q{i}", "method": "POST", "url": "/v1/chat/completions",
         "body": {"model": MODEL, "messages": QUESTION, "temperature": 0, "max_tokens": 4}}
        for i in range(n)
    ]
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    uploaded = client.files.create(file=("questions.jsonl", io.BytesIO(data)), purpose="batch")
    assert uploaded.purpose == "batch" and uploaded.bytes == len(data), uploaded
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h",
        metadata={"check": "openai-client"},
    )
    deadline = time.time() + 300
    while batch.status not in ("completed", "failed", "cancelled", "expired"):
        assert time.time() < deadline, batch
        time.sleep(0.2)
        batch = client.batches.retrieve(batch.id)
    assert batch.status == "completed", batch
    assert batch.request_counts.completed == n, batch.request_counts
    output = client.files.content(batch.output_file_id).text
    answers = [json.loads(line) for line in output.splitlines()]
    ids = sorted(a["custom_id"] for a in answers)
    assert ids == sorted(f"q{i}" for i in range(n)), ids
    assert all(a["response"]["status_code"] == 200 for a in answers), answers
    assert any(b.id == batch.id for b in client.batches.list(limit=5).data)

    again = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h",
    )
    cancelled = client.batches.cancel(again.id)
    assert cancelled.status in ("cancelling", "cancelled"), cancelled
    while cancelled.status == "cancelling":
        assert time.time() < deadline, cancelled
        time.sleep(0.2)
        cancelled = client.batches.retrieve(again.id)
    assert cancelled.status == "cancelled", cancelled
    assert cancelled.request_counts.completed < n, cancelled.request_counts


def main():
    client = openai.OpenAI(base_url=sys.argv[1], api_key=API_KEY, max_retries=0, timeout=120)
    checks = [check_models, check_chat, check_chat_stream, check_completion, check_errors, check_api_key,
              check_batches]
    failed = 0
    for check in checks:
        try:
            check(client)
            print(f"ok   {check.__name__}")
        except Exception as e:  # report every failing check, not only the first
            failed += 1
            print(f"FAIL {check.__name__}: {e!r}")
    print(f"openai-client: {len(checks) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
