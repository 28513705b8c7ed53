from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from extproc.usage import SSEUsageParser, Usage, usage_from_json


def _stream(prompt: int, completion: int) -> bytes:
    chunks: list[dict[str, Any]] = [{"choices": [{"delta": {"content": f"t{i}"}}]} for i in range(3)]
    chunks.append(
        {
            "choices": [],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }
    )
    return b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.lists(st.integers(0, 10**4), max_size=8))
def test_sse_usage_is_found_wherever_the_stream_is_split(
    prompt: int, completion: int, cuts: list[int]
) -> None:
    data = _stream(prompt, completion)
    points = sorted({c % (len(data) + 1) for c in cuts})
    parser = SSEUsageParser()
    prev = 0
    for p in [*points, len(data)]:
        parser.feed(data[prev:p])
        prev = p
    assert parser.usage == Usage(prompt, completion, prompt + completion)
    assert parser.events == 4


@given(st.binary(max_size=300))
def test_sse_parser_survives_any_bytes(data: bytes) -> None:
    parser = SSEUsageParser()
    parser.feed(data)
    parser.feed(b"\n")


def test_json_usage() -> None:
    body = b'{"usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}'
    assert usage_from_json(body) == Usage(3, 4, 7)
    assert usage_from_json(b'{"usage": {"prompt_tokens": 5, "total_tokens": 5}}') == Usage(5, 0, 5)
    assert usage_from_json(b'{"usage": {"prompt_tokens": 2, "completion_tokens": 2}}') == Usage(2, 2, 4)


def test_no_usage_gives_none() -> None:
    for body in (
        b"",
        b"not json",
        b"[]",
        b'{"id": 1}',
        b'{"usage": "lots"}',
        b'{"usage": {"prompt_tokens": -1}}',
    ):
        assert usage_from_json(body) is None


def test_sse_keeps_the_last_usage_when_every_chunk_carries_one() -> None:
    """vLLM with ``stream_options: {include_usage, continuous_usage_stats}``: totals on every chunk."""
    chunks = [
        {
            "choices": [{"delta": {"content": f"t{i}"}}],
            "usage": {"prompt_tokens": 7, "completion_tokens": i + 1},
        }
        for i in range(5)
    ]
    chunks.append({"choices": [{"delta": {}}], "usage": None})  # a null usage keeps the last real one
    parser = SSEUsageParser()
    for c in chunks:
        parser.feed(b"data: " + orjson.dumps(c) + b"\n\n")
    parser.feed(b"data: [DONE]\n\n")
    assert parser.usage == Usage(7, 5, 12)
    assert parser.events == 6
