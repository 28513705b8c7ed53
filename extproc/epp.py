"""The client side of the Inference Extension's endpoint-picker protocol: the ext_proc asks a v1 pool's
external endpoint picker (EPP) for each request's endpoint, playing the part Envoy plays in the protocol.

The protocol is an Envoy ext_proc stream with bodies ``FULL_DUPLEX_STREAMED``: the proxy sends the request
headers and the body (the last chunk ``end_of_stream``); the EPP schedules the request and answers with a
request-headers response that sets ``x-gateway-destination-endpoint: <ip:port>`` (and the same value in
dynamic metadata ``envoy.lb``), then the body, possibly rewritten, as streamed body responses; or with an
immediate response (429 shed, 503 no endpoint, ...). The response's headers and body follow on the same
stream, so that the EPP's completion hooks (in-flight counts, latency and prefix-cache bookkeeping) see when
the request ends.

Doing this in the ext_proc rather than as a second ext_proc filter in Envoy keeps the failure modes ours:
Envoy cannot fail open around a ``FULL_DUPLEX_STREAMED`` ext_proc (Envoy Gateway's EnvoyExtensionPolicy
rejects ``failOpen`` with that body mode), and a failed EPP answered by the ext_proc gets an OpenAI-shaped
error.

Contract:
- ``EppClient.start(picker, headers=, body=)`` opens one stream, sends the request and returns an
  ``EppSession`` whose ``decision`` is the EPP's answer (``EppDecision``); it raises ``EppUnavailableError``
  (with the reason) when the EPP can't be reached, fails the stream, times out, or names no usable endpoint.
- ``EppSession.forward_response_headers`` / ``forward_response_body`` queue the response for the EPP without
  waiting; ``close()`` ends the stream (always call it, once).
- Channels are cached per address and closed by ``EppClient.close()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import grpc
from envoy.config.core.v3 import base_pb2 as core
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep

from api import headers as hdr
from extproc.tlstunnel import TlsTunnel

log = logging.getLogger(__name__)

_RUNNING: set[asyncio.Task[None]] = set()
"""Sessions still forwarding (a task must be referenced until it ends)."""
PROCESS_METHOD: Final = "/envoy.service.ext_proc.v3.ExternalProcessor/Process"
DESTINATION_METADATA_NAMESPACE: Final = "envoy.lb"
CLOSE_GRACE_SECONDS: Final = 5.0
MAX_CHANNELS: Final = 32
"""EPP addresses kept connected at once (every EPP replica of every pool of the Gateway, with room)."""
"""How long a finished request's stream may take to end before it is cancelled."""


class EppUnavailableError(Exception):
    """The EPP gave no usable answer; the message says why (never a request's content)."""


@dataclass(frozen=True, slots=True)
class EppDecision:
    """The EPP's answer: an endpoint (``ip:port``) and the body to send (None: unchanged), or an immediate
    response (``status`` > 0) it wants the client to get."""

    endpoint: str = ""
    body: bytes | None = None
    status: int = 0
    message: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class EppTarget:
    """Where and how to reach one EPP: its addresses (``ip:port``), its name for logs, the exchange's
    deadline, the target ports an endpoint it names must use, and whether our own picker takes over when it
    fails (FailOpen) or the request gets 503 (FailClose)."""

    service: str
    addresses: tuple[str, ...]
    timeout: float
    ports: frozenset[int]
    fail_open: bool = False
    tls: bool = False
    """TLS without certificate verification (``extproc.tlstunnel``), else plaintext gRPC."""


def _headers_message(headers: Iterable[tuple[str, str]]) -> ep.ProcessingRequest:
    hm = core.HeaderMap(headers=[core.HeaderValue(key=k, raw_value=v.encode()) for k, v in headers])
    return ep.ProcessingRequest(request_headers=ep.HttpHeaders(headers=hm, end_of_stream=False))


def valid_endpoint(value: str, ports: frozenset[int]) -> str | None:
    """``value`` when it is one ``ip:port`` (IPv6 in brackets) on one of ``ports``; the first entry of a
    comma list (protocol v0.4) counts. None otherwise."""
    first = value.split(",", 1)[0].strip()
    host, sep, port = first.rpartition(":")
    if not sep or not port.isdigit() or int(port) not in ports:
        return None
    try:
        ip = ipaddress.ip_address(host[1:-1] if host.startswith("[") and host.endswith("]") else host)
    except ValueError:
        return None
    if ip.version == 6 and not host.startswith("["):
        return None
    return first


class EppSession:
    """One request's stream to the EPP (see the module doc)."""

    def __init__(self, call: Any, target: EppTarget) -> None:
        self._call = call
        self._target = target
        self._queue: asyncio.Queue[ep.ProcessingRequest | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self.decision = EppDecision()

    async def _exchange(self, headers: list[tuple[str, str]], body: bytes) -> EppDecision:
        call = self._call
        await call.write(_headers_message(headers))
        await call.write(ep.ProcessingRequest(request_body=ep.HttpBody(body=body, end_of_stream=True)))
        endpoint = ""
        chunks: list[bytes] = []
        while True:
            resp = await call.read()
            if resp is grpc.aio.EOF:
                raise EppUnavailableError("the stream ended before the EPP chose an endpoint")
            kind = resp.WhichOneof("response")
            if kind == "immediate_response":
                ir = resp.immediate_response
                return EppDecision(
                    status=int(ir.status.code) or 500, message=ir.body.decode("utf-8", "replace")
                )
            if kind == "request_headers":
                endpoint = _destination(resp.request_headers.response, resp) or endpoint
                continue
            if kind == "request_body":
                # the protocol's first version (buffered bodies) names the endpoint in the body's answer
                endpoint = _destination(resp.request_body.response, resp) or endpoint
                mutation = resp.request_body.response.body_mutation
                which = mutation.WhichOneof("mutation")
                if which == "streamed_response":
                    chunks.append(mutation.streamed_response.body)
                    if not mutation.streamed_response.end_of_stream:
                        continue
                elif which == "body":
                    chunks.append(mutation.body)
                break
            # anything else before the body's answer (e.g. request trailers) is not ours to act on
        if not endpoint:
            raise EppUnavailableError("the EPP named no endpoint")
        chosen = valid_endpoint(endpoint, self._target.ports)
        if chosen is None:
            raise EppUnavailableError(
                f"the EPP named {endpoint[:80]!r}, not an ip:port on the pool's target ports"
            )
        new_body = b"".join(chunks) if chunks else None
        return EppDecision(endpoint=chosen, body=new_body if new_body != body else None)

    async def _write_loop(self) -> None:
        call = self._call
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError, grpc.aio.UsageError):
            while (msg := await self._queue.get()) is not None:
                await call.write(msg)
            await call.done_writing()

    async def _read_loop(self) -> None:
        # the EPP answers every forwarded message; read its answers so that its sends never block
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError, grpc.aio.UsageError):
            while await self._call.read() is not grpc.aio.EOF:
                pass

    async def _run(self) -> None:
        reader = asyncio.ensure_future(self._read_loop())
        try:
            await self._write_loop()
            async with asyncio.timeout(CLOSE_GRACE_SECONDS):
                await reader
        except TimeoutError:
            pass
        finally:
            reader.cancel()
            self._call.cancel()

    def _send(self, msg: ep.ProcessingRequest) -> None:
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._run())
            _RUNNING.add(self._writer)
            self._writer.add_done_callback(_RUNNING.discard)
        self._queue.put_nowait(msg)

    def forward_response_headers(self, headers: Iterable[tuple[str, str]], *, end_of_stream: bool) -> None:
        """Queue the response headers for the EPP (it reads the status and whether the answer streams)."""
        hm = core.HeaderMap(headers=[core.HeaderValue(key=k, raw_value=v.encode()) for k, v in headers])
        self._send(
            ep.ProcessingRequest(response_headers=ep.HttpHeaders(headers=hm, end_of_stream=end_of_stream))
        )

    def forward_response_body(self, body: bytes, *, end_of_stream: bool) -> None:
        """Queue one response body chunk for the EPP (its usage and completion bookkeeping)."""
        self._send(ep.ProcessingRequest(response_body=ep.HttpBody(body=body, end_of_stream=end_of_stream)))

    def close(self) -> None:
        """End the stream: what was queued is sent, then the EPP may finish within ``CLOSE_GRACE_SECONDS``."""
        if self._writer is None:
            self._call.cancel()
            return
        self._queue.put_nowait(None)


def _destination(common: Any, resp: Any) -> str:
    """The endpoint an answer names: its ``x-gateway-destination-endpoint`` header mutation, else the same key
    in its dynamic metadata; empty when it names none."""
    for h in common.header_mutation.set_headers:
        if h.header.key.lower() == hdr.GATEWAY_DESTINATION_ENDPOINT_HEADER:
            return str((h.header.raw_value or h.header.value.encode()).decode("utf-8", "replace"))
    return _metadata_endpoint(resp)


def _metadata_endpoint(resp: Any) -> str:
    md = resp.dynamic_metadata.fields.get(DESTINATION_METADATA_NAMESPACE)
    if md is None or md.WhichOneof("kind") != "struct_value":
        return ""
    value = md.struct_value.fields.get(hdr.GATEWAY_DESTINATION_ENDPOINT_HEADER)
    return value.string_value if value is not None else ""


_CHANNEL_OPTIONS: Final = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    # an EPP that restarts must be used again within about a second, not after gRPC's default backoff
    # (up to 120 s), during which every request would fail (or fall back) without trying it
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


class EppClient:
    """Streams to external endpoint pickers, one cached channel per address."""

    def __init__(self) -> None:
        self._channels: dict[tuple[str, bool], grpc.aio.Channel] = {}
        self._tunnels: dict[str, TlsTunnel] = {}
        self._next = 0

    async def _channel(self, address: str, *, tls: bool) -> grpc.aio.Channel:
        key = (address, tls)
        ch = self._channels.pop(key, None)
        if ch is not None:
            self._channels[key] = ch  # most recently used last
        else:
            self._forget_oldest()
            target = address
            if tls:
                tunnel = self._tunnels.get(address)
                if tunnel is None:
                    host, _, port = address.rpartition(":")
                    tunnel = TlsTunnel(host=host.strip("[]"), port=int(port))
                    await tunnel.start()
                    self._tunnels[address] = tunnel
                target = tunnel.target
            ch = self._channels[key] = grpc.aio.insecure_channel(target, options=_CHANNEL_OPTIONS)
        return ch

    def _forget_oldest(self) -> None:
        """Close the least recently used channel (and its tunnel) once ``MAX_CHANNELS`` are open, in the
        background: EPP addresses change with their Services' DNS answers, and old ones must not pile up.
        Streams still running on it get ``CLOSE_GRACE_SECONDS`` to end."""
        if len(self._channels) < MAX_CHANNELS:
            return
        (address, tls), ch = next(iter(self._channels.items()))
        del self._channels[(address, tls)]
        tunnel = self._tunnels.pop(address, None) if tls else None

        async def close() -> None:
            with contextlib.suppress(Exception):
                await ch.close(grace=CLOSE_GRACE_SECONDS)
            if tunnel is not None:
                await tunnel.close()

        task = asyncio.get_running_loop().create_task(close())
        _RUNNING.add(task)
        task.add_done_callback(_RUNNING.discard)

    async def start(self, target: EppTarget, *, headers: Mapping[str, str], body: bytes) -> EppSession:
        """Send the request to the EPP and wait for its decision (see the module doc)."""
        if not target.addresses:
            raise EppUnavailableError(f"no address is known for the EPP {target.service}")
        self._next += 1
        address = target.addresses[self._next % len(target.addresses)]
        process = (await self._channel(address, tls=target.tls)).stream_stream(
            PROCESS_METHOD,
            request_serializer=ep.ProcessingRequest.SerializeToString,
            response_deserializer=ep.ProcessingResponse.FromString,
        )
        call = process()
        session = EppSession(call, target)
        forward = [(k, v) for k, v in headers.items() if k not in hdr.CLIENT_ROUTING_HEADERS]
        try:
            async with asyncio.timeout(target.timeout):
                session.decision = await session._exchange(forward, body)
        except asyncio.CancelledError:
            call.cancel()  # the client went away: end the EPP's stream too
            raise
        except TimeoutError:
            call.cancel()
            raise EppUnavailableError(
                f"the EPP {target.service} ({address}) did not answer within {target.timeout:g}s"
            ) from None
        except grpc.aio.AioRpcError as e:
            call.cancel()
            raise EppUnavailableError(
                f"the EPP {target.service} ({address}): {e.code().name}: {e.details()}"
            ) from None
        except EppUnavailableError as e:
            call.cancel()
            raise EppUnavailableError(f"the EPP {target.service} ({address}): {e}") from None
        return session

    async def close(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        tunnels, self._tunnels = list(self._tunnels.values()), {}
        for ch in channels:
            with contextlib.suppress(Exception):
                await ch.close()
        for t in tunnels:
            await t.close()
