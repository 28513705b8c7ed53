"""AWS event stream framing (``application/vnd.amazon.eventstream``): decode with botocore, encode for fakes.

Decoding is botocore's ``EventStreamBuffer``, which checks both CRCs of every frame; ``FrameDecoder`` turns
its exceptions into one ``FrameError`` and notices a stream that ends inside a frame. ``encode_frame`` is the
inverse, used by the fake Bedrock in the tests and checked against the decoder.
"""

from __future__ import annotations

import struct
from binascii import crc32
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from botocore.eventstream import EventStreamBuffer, ParserError

_STRING = 7
"""Header value type 7: a UTF-8 string with a 2-byte length."""


class FrameError(Exception):
    """The byte stream is not a valid event stream (bad CRC, bad length, or truncated)."""


@dataclass(frozen=True, slots=True)
class Frame:
    headers: Mapping[str, object]
    payload: bytes


class FrameDecoder:
    """Feed bytes as they arrive; get the complete frames. Raises FrameError, never anything else."""

    __slots__ = ("_buffer", "_failed", "_pending")

    def __init__(self) -> None:
        self._buffer = EventStreamBuffer()
        self._pending = 0
        self._failed = False

    def feed(self, data: bytes) -> Iterator[Frame]:
        if self._failed:
            raise FrameError("the event stream already failed")
        self._buffer.add_data(data)
        self._pending += len(data)
        try:
            for message in self._buffer:
                self._pending -= message.prelude.total_length
                yield Frame(headers=message.headers, payload=bytes(message.payload))
        except ParserError as e:
            self._failed = True
            raise FrameError(f"invalid event stream frame: {type(e).__name__}: {e}") from None
        except Exception as e:  # a prelude too short to unpack, or a header of an unknown type
            self._failed = True
            raise FrameError(f"invalid event stream frame: {type(e).__name__}: {e}") from None

    def close(self) -> None:
        """The stream ended: raise FrameError when it ended inside a frame."""
        if self._pending and not self._failed:
            self._failed = True
            raise FrameError(f"the event stream ended inside a frame ({self._pending} bytes left over)")


def encode_frame(*, headers: Mapping[str, str], payload: bytes) -> bytes:
    """One event stream frame with string-valued ``headers`` and both CRCs."""
    parts = []
    for name, value in headers.items():
        n, v = name.encode(), value.encode()
        parts.append(struct.pack(">B", len(n)) + n + struct.pack(">BH", _STRING, len(v)) + v)
    header_bytes = b"".join(parts)
    total = 12 + len(header_bytes) + len(payload) + 4
    prelude = struct.pack(">II", total, len(header_bytes))
    prelude += struct.pack(">I", crc32(prelude))
    message = prelude + header_bytes + payload
    return message + struct.pack(">I", crc32(message))


def event_frame(event_type: str, payload: bytes) -> bytes:
    """A Bedrock stream event (``:message-type: event``) carrying a JSON ``payload``."""
    return encode_frame(
        headers={":event-type": event_type, ":content-type": "application/json", ":message-type": "event"},
        payload=payload,
    )


def exception_frame(exception_type: str, payload: bytes) -> bytes:
    """A Bedrock stream exception (``:message-type: exception``), e.g. ``throttlingException``."""
    return encode_frame(
        headers={
            ":exception-type": exception_type,
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        payload=payload,
    )
