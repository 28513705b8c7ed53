"""The Bedrock golden corpus: each ``golden/<case>.json`` holds an input and the translation we expect.

Requests: OpenAI chat body -> Converse path and body (or the 400 message). Responses: Converse JSON ->
``chat.completion``. Errors: status + ``x-amzn-errortype`` + body -> OpenAI error. Streams: event stream
frames (built with ``encode_frame``, optionally corrupted or truncated) -> the SSE events the client gets,
the same whether the bytes arrive at once, in frames, or one byte at a time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from extproc.providers import bedrock
from extproc.providers.bedrock_stream import ConverseStream
from extproc.providers.eventstream import event_frame, exception_frame
from extproc.translate import BedrockResponse
from tests.unit.extproc.providers import corpus

GOLDEN = Path(__file__).with_name("golden")
ID, CREATED = "chatcmpl-golden", 1_700_000_000


def _stream_bytes(frames: list[dict[str, Any]]) -> list[bytes]:
    out = []
    for f in frames:
        payload = orjson.dumps(f["payload"])
        raw = (
            exception_frame(f["exception"], payload) if "exception" in f else event_frame(f["event"], payload)
        )
        if f.get("corrupt"):
            raw = raw[:-6] + bytes([raw[-6] ^ 0xFF]) + raw[-5:]  # a payload byte: the message CRC fails
        if f.get("truncate"):
            raw = raw[: -f["truncate"]]
        out.append(raw)
    return out


def _events(sse: bytes) -> list[Any]:
    events = []
    for block in sse.decode().split("\n\n"):
        if not block:
            continue
        assert block.startswith("data: "), block
        data = block[len("data: ") :]
        events.append(data if data == "[DONE]" else orjson.loads(data))
    return events


def _run_stream(chunks: list[bytes]) -> tuple[list[Any], dict[str, int] | None]:
    stream = ConverseStream(model="client-model", id_=ID, created=CREATED)
    out = b"".join(stream.feed(c, end_of_stream=False) for c in chunks) + stream.feed(b"", end_of_stream=True)
    usage = stream.usage
    return _events(out), bedrock.openai_usage(usage) if usage else None


def expected_for(name: str) -> dict[str, Any]:
    """The input and the translation of case ``name`` as the current code makes it."""
    if name in corpus.REQUESTS:
        doc = corpus.REQUESTS[name]
        path = bedrock.converse_path(model=doc["model"], stream=doc.get("stream") is True)
        return {"input": doc, "path": path, "converse": orjson.loads(bedrock.converse_request(doc))}
    if name in corpus.BAD_REQUESTS:
        doc = corpus.BAD_REQUESTS[name]
        with pytest.raises(bedrock.TranslationError) as e:
            bedrock.converse_request(doc)
        return {"input": doc, "error": str(e.value)}
    if name in corpus.RESPONSES:
        doc = corpus.RESPONSES[name]
        body, _ = bedrock.chat_completion(orjson.dumps(doc), model="client-model", id_=ID, created=CREATED)
        return {"input": doc, "openai": orjson.loads(body)}
    if name in corpus.ERRORS:
        case = corpus.ERRORS[name]
        tr = BedrockResponse(model="m", stream=False, id_=ID, created=CREATED)
        tr.on_headers({"x-amzn-errortype": case["errortype"]} if case["errortype"] else {})
        return {
            "input": case,
            "openai": orjson.loads(tr.error(status=case["status"], body=case["body"].encode())),
        }
    case = corpus.STREAMS[name]
    events, stream_usage = _run_stream(_stream_bytes(case["frames"]))
    return {"input": case, "events": events, "usage": stream_usage}


def _cases() -> list[str]:
    return sorted(p.stem for p in GOLDEN.glob("*.json"))


def test_every_corpus_case_has_a_golden_file() -> None:
    names = {*corpus.REQUESTS, *corpus.BAD_REQUESTS, *corpus.RESPONSES, *corpus.ERRORS, *corpus.STREAMS}
    assert names == set(_cases())


@pytest.mark.parametrize("name", _cases())
def test_golden(name: str) -> None:
    golden = orjson.loads((GOLDEN / f"{name}.json").read_bytes())
    actual = expected_for(name)
    assert actual["input"] == golden["input"], "corpus.py and the golden file disagree on the input"
    assert actual == golden


@pytest.mark.parametrize("name", sorted(corpus.STREAMS))
def test_streams_do_not_depend_on_how_bytes_are_split(name: str) -> None:
    frames = _stream_bytes(corpus.STREAMS[name]["frames"])
    whole = _run_stream([b"".join(frames)])
    assert _run_stream(frames) == whole
    raw = b"".join(frames)
    assert _run_stream([raw[i : i + 1] for i in range(len(raw))]) == whole
    assert _run_stream([raw[i : i + 7] for i in range(0, len(raw), 7)]) == whole


@pytest.mark.parametrize("name", ["stream-bad-crc", "stream-truncated", "stream-exception"])
def test_a_broken_stream_ends_with_an_error_event_and_done(name: str) -> None:
    events, _ = _run_stream(_stream_bytes(corpus.STREAMS[name]["frames"]))
    assert events[-1] == "[DONE]"
    assert set(events[-2]) == {"error"} and events[-2]["error"]["message"]
    assert all("error" not in e for e in events[:-2])


def test_bytes_after_a_broken_frame_are_dropped() -> None:
    frames = _stream_bytes(corpus.STREAMS["stream-bad-crc"]["frames"])
    stream = ConverseStream(model="m", id_=ID, created=CREATED)
    stream.feed(frames[0] + frames[1], end_of_stream=False)
    assert stream.feed(frames[2], end_of_stream=False) == b""
    assert stream.feed(b"", end_of_stream=True) == b""
