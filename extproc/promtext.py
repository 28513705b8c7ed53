"""A minimal reader of the Prometheus text format for the few series the endpoint picker needs.

It never parses the whole page: each wanted name is found with ``bytes.find`` (in C) at the start of a line,
so a model server's page of hundreds of histogram lines costs a few microseconds. Comment lines (``# HELP``,
``# TYPE``) never match, because a sample line starts with the metric name itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class Sample:
    """One sample line: its raw label block (without braces, may be empty) and its value."""

    labels: bytes
    value: float


def _line_starts(page: bytes, name: bytes) -> Iterator[int]:
    if page.startswith(name):
        yield 0
    needle = b"\n" + name
    i = page.find(needle)
    while i >= 0:
        yield i + 1
        i = page.find(needle, i + 1)


def samples(page: bytes, name: bytes) -> Iterator[Sample]:
    """Every sample of the series ``name`` in ``page``; lines that do not parse are skipped."""
    n = len(name)
    for at in _line_starts(page, name):
        after = at + n
        if after >= len(page):
            return
        nxt = page[after]
        if nxt == 0x7B:  # '{'
            close = page.find(b"}", after)
            if close < 0:
                return
            labels = page[after + 1 : close]
            rest_at = close + 1
        elif nxt == 0x20 or nxt == 0x09:  # ' ' or tab
            labels = b""
            rest_at = after
        else:
            continue  # a longer name that starts with ``name`` (e.g. name_total)
        end = page.find(b"\n", rest_at)
        parts = (page[rest_at:] if end < 0 else page[rest_at:end]).split()
        if not parts:
            continue
        try:
            value = float(parts[0])
        except ValueError:
            continue
        yield Sample(labels=labels, value=value)


def total(page: bytes, name: bytes) -> float | None:
    """Sum of every sample of ``name``, or None when the page has none."""
    found = False
    acc = 0.0
    for s in samples(page, name):
        found = True
        acc += s.value
    return acc if found else None


def maximum(page: bytes, name: bytes) -> float | None:
    """Largest sample of ``name``, or None when the page has none."""
    best: float | None = None
    for s in samples(page, name):
        if best is None or s.value > best:
            best = s.value
    return best


def label(labels: bytes, key: bytes) -> str | None:
    """The value of label ``key`` in a raw label block (``a="x",b="y"``), unescaped; None when absent."""
    pos = 0
    while True:
        i = labels.find(key + b'="', pos)
        if i < 0:
            return None
        if i == 0 or labels[i - 1] in b", \t{":
            break
        pos = i + 1
    j = i + len(key) + 2
    out = bytearray()
    while j < len(labels):
        c = labels[j]
        if c == 0x5C and j + 1 < len(labels):  # backslash escape
            nxt = labels[j + 1]
            out.append(0x0A if nxt == 0x6E else nxt)
            j += 2
            continue
        if c == 0x22:
            return out.decode("utf-8", "replace")
        out.append(c)
        j += 1
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class LoraInfo:
    running: frozenset[str]
    waiting: frozenset[str]
    max_lora: int


def lora_info(page: bytes, name: bytes) -> LoraInfo | None:
    """vLLM's ``lora_requests_info``: the series with the newest value (a timestamp) wins."""
    best: Sample | None = None
    for s in samples(page, name):
        if best is None or s.value >= best.value:
            best = s
    if best is None:
        return None

    def names(key: bytes) -> frozenset[str]:
        raw = label(best.labels, key) or ""
        return frozenset(x.strip() for x in raw.split(",") if x.strip())

    try:
        max_lora = int(float(label(best.labels, b"max_lora") or "0"))
    except ValueError:
        max_lora = 0
    return LoraInfo(
        running=names(b"running_lora_adapters"), waiting=names(b"waiting_lora_adapters"), max_lora=max_lora
    )
