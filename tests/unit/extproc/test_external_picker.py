"""A v1 pool with an external endpoint picker: the ext_proc asks the EPP (here a fake EPP gRPC server
speaking the protocol's side of the stream) for the endpoint; its failure modes; what it forwards and never
forwards."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import random
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from envoy.config.core.v3 import base_pb2 as core
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from envoy.type.v3 import http_status_pb2

from api import headers as hdr
from extproc import epp as epp_module
from extproc.epp import EppClient, valid_endpoint
from extproc.metrics import Metrics
from extproc.picker import RandomPicker
from extproc.processor import Dependencies, RequestProcessor
from extproc.watch import ConfigHolder
from tests.unit.extproc.configs import pool_config, snapshot_of
from tests.unit.extproc.test_processor import _answer, _body_msg, _headers_msg, _set_headers

PODS = [("10.0.0.1", 8000), ("10.0.0.2", 8000)]


@dataclass
class FakeEpp:
    """Answers like the EPP v1.5.0: after the whole body, a headers response naming ``choose`` (or an
    immediate response with ``status``), then the body back as one streamed chunk; records what it got."""

    choose: str = "10.0.0.2:8000"
    status: int = 0
    delay: float = 0.0
    tls: bool = False
    buffered: bool = False
    cancelled: bool = False
    received: list[Any] = field(default_factory=list)
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    async def process(self, requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
        try:
            async for resp in self._answers(requests):
                yield resp
        except asyncio.CancelledError:
            self.cancelled = True
            raise

    async def _answers(self, requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async for req in requests:
            self.received.append(req)
            kind = req.WhichOneof("request")
            if kind == "request_body" and req.request_body.end_of_stream:
                await asyncio.sleep(self.delay)
                if self.status:
                    yield ep.ProcessingResponse(
                        immediate_response=ep.ImmediateResponse(
                            status=http_status_pb2.HttpStatus(code=self.status), body=b"system saturated"
                        )
                    )
                    return
                mutation = ep.HeaderMutation(
                    set_headers=[
                        core.HeaderValueOption(
                            header=core.HeaderValue(
                                key=hdr.GATEWAY_DESTINATION_ENDPOINT_HEADER, raw_value=self.choose.encode()
                            )
                        )
                    ]
                )
                yield ep.ProcessingResponse(
                    request_headers=ep.HeadersResponse(
                        response=ep.CommonResponse(
                            header_mutation=None if self.buffered else mutation, clear_route_cache=True
                        )
                    )
                )
                body = req.request_body.body.replace(b'"llama"', b'"llama-lora"')
                if self.buffered:  # the protocol's first version: the endpoint in the body's answer
                    body_mutation = ep.BodyMutation(body=body)
                    yield ep.ProcessingResponse(
                        request_body=ep.BodyResponse(
                            response=ep.CommonResponse(header_mutation=mutation, body_mutation=body_mutation)
                        )
                    )
                    continue
                yield ep.ProcessingResponse(
                    request_body=ep.BodyResponse(
                        response=ep.CommonResponse(
                            body_mutation=ep.BodyMutation(
                                streamed_response=ep.StreamedBodyResponse(body=body, end_of_stream=True)
                            )
                        )
                    )
                )
            elif kind == "response_headers":
                yield ep.ProcessingResponse(response_headers=ep.HeadersResponse())
            elif kind == "response_body":
                yield ep.ProcessingResponse(response_body=ep.BodyResponse())
        self.ended.set()


def _nameless_self_signed() -> tuple[bytes, bytes]:
    """A certificate like the EPP's own default: self-signed, no subject name, no SAN."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Inference Ext")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


@pytest.fixture(params=[False, True], ids=["plaintext", "tls"])
async def fake_epp(request: pytest.FixtureRequest) -> AsyncIterator[tuple[FakeEpp, int]]:
    fake = FakeEpp(tls=request.param)
    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler(
        "envoy.service.ext_proc.v3.ExternalProcessor",
        {
            "Process": grpc.stream_stream_rpc_method_handler(
                fake.process,
                request_deserializer=ep.ProcessingRequest.FromString,
                response_serializer=ep.ProcessingResponse.SerializeToString,
            )
        },
    )
    server.add_generic_rpc_handlers((handler,))
    if fake.tls:
        cert, key = _nameless_self_signed()
        port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(key, cert)]))
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield fake, port
    await server.stop(0)


def _config(
    epp_port: int, *, mode: str = "FailClose", timeout: float = 5.0, tls: bool = False
) -> dict[str, Any]:
    cfg = pool_config(PODS, name="p.ns@v1")
    cfg["pools"][0]["servesAnyModel"] = True
    cfg["pools"][0]["externalPicker"] = {
        "service": "epp.ns:9002",
        "endpoints": [{"ip": "127.0.0.1", "port": epp_port}],
        "targetPorts": [8000],
        "failureMode": mode,
        "timeoutSeconds": timeout,
        "tls": tls,
    }
    return cfg


async def _route(cfg: dict[str, Any], *, client: EppClient) -> tuple[RequestProcessor, Any]:
    rng = random.Random(3)
    deps = Dependencies(
        holder=ConfigHolder(snapshot_of(cfg)),
        picker=RandomPicker(rng=rng),
        metrics=Metrics(),
        rng=rng,
        epp=client,
    )
    proc = RequestProcessor(deps=deps)
    first = proc.handle(
        _headers_msg(
            {
                ":path": "/v1/chat/completions",
                ":method": "POST",
                hdr.GATEWAY_DESTINATION_ENDPOINT_HEADER: "6.6.6.6:8000",
                "x-gateway-inference-objective": "sheddable",
            }
        )
    )
    assert isinstance(first, bytes)
    out = proc.handle(_body_msg(b'{"model": "llama"}'))
    assert not isinstance(out, bytes), "a pool with an external picker must be awaited"
    return proc, _answer(await out)


async def test_the_request_goes_where_the_epp_chose_with_its_body(fake_epp: tuple[FakeEpp, int]) -> None:
    fake, port = fake_epp
    client = EppClient()
    proc, resp = await _route(_config(port, tls=fake.tls), client=client)
    headers = _set_headers(resp)
    assert headers[hdr.SELECTED_BACKEND_HEADER] == hdr.ORIGINAL_DST_CLUSTER
    assert headers[hdr.ORIGINAL_DST_HEADER] == "10.0.0.2:8000"
    assert resp.request_body.response.body_mutation.body == b'{"model": "llama-lora"}'
    assert headers["content-length"] == str(len(b'{"model": "llama-lora"}'))
    # the EPP's choice goes upstream under the protocol's header, replacing the client's
    assert headers[hdr.GATEWAY_DESTINATION_ENDPOINT_HEADER] == "10.0.0.2:8000"
    sent = {h.key: h.raw_value.decode() for h in fake.received[0].request_headers.headers.headers}
    assert hdr.GATEWAY_DESTINATION_ENDPOINT_HEADER not in sent, "a client's destination reached the EPP"
    assert sent["x-gateway-inference-objective"] == "sheddable"
    assert orjson.loads(fake.received[1].request_body.body) == {"model": "llama"}
    # the response reaches the EPP too, and the stream ends with the request
    proc.handle(ep.ProcessingRequest(response_headers=ep.HttpHeaders(headers=core.HeaderMap(
        headers=[core.HeaderValue(key=":status", raw_value=b"200")]))))  # fmt: skip
    proc.handle(ep.ProcessingRequest(response_body=ep.HttpBody(body=b"{}", end_of_stream=True)))
    proc.finish()
    await asyncio.wait_for(fake.ended.wait(), 5)
    kinds = [r.WhichOneof("request") for r in fake.received]
    assert kinds == ["request_headers", "request_body", "response_headers", "response_body"]
    await client.close()


async def test_an_immediate_response_of_the_epp_reaches_the_client_in_openai_shape(
    fake_epp: tuple[FakeEpp, int],
) -> None:
    fake, port = fake_epp
    fake.status = 429
    client = EppClient()
    _, resp = await _route(_config(port, tls=fake.tls), client=client)
    assert resp.immediate_response.status.code == 429
    err = orjson.loads(resp.immediate_response.body)["error"]
    assert err["type"] == "rate_limit_exceeded" and "system saturated" in err["message"]
    await client.close()


@pytest.mark.parametrize("mode", ["FailOpen", "FailClose"])
async def test_an_epp_that_is_down(mode: str, caplog: pytest.LogCaptureFixture) -> None:
    # a port nothing listens on: connection refused
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = EppClient()
    _, resp = await _route(_config(port, mode=mode), client=client)
    for _ in range(3):  # an EPP that is down fails every request: one warning, not one per request
        await _route(_config(port, mode=mode), client=client)
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and "p.ns@v1" in r.getMessage()]
    assert len(warnings) <= 1, [r.getMessage() for r in warnings]
    if mode == "FailOpen":
        assert _set_headers(resp)[hdr.ORIGINAL_DST_HEADER] in {f"{i}:{p}" for i, p in PODS}
        removed = resp.request_body.response.header_mutation.remove_headers
        assert hdr.GATEWAY_DESTINATION_ENDPOINT_HEADER in removed, "the client's destination survived"
    else:
        assert resp.immediate_response.status.code == 503
        err = orjson.loads(resp.immediate_response.body)["error"]
        assert err["code"] == "endpoint_picker_unavailable" and "p.ns@v1" in err["message"]
    await client.close()


async def test_an_epp_slower_than_its_timeout_counts_as_down(fake_epp: tuple[FakeEpp, int]) -> None:
    fake, port = fake_epp
    fake.delay = 2.0
    client = EppClient()
    _, resp = await _route(_config(port, timeout=0.3, tls=fake.tls), client=client)
    assert resp.immediate_response.status.code == 503
    await client.close()


async def test_an_endpoint_off_the_pools_target_ports_is_refused(fake_epp: tuple[FakeEpp, int]) -> None:
    fake, port = fake_epp
    fake.choose = "10.0.0.2:22"
    client = EppClient()
    _, resp = await _route(_config(port, mode="FailOpen", tls=fake.tls), client=client)
    assert _set_headers(resp)[hdr.ORIGINAL_DST_HEADER] in {f"{i}:{p}" for i, p in PODS}
    await client.close()


async def test_an_epp_naming_the_endpoint_in_its_body_answer_is_understood(
    fake_epp: tuple[FakeEpp, int],
) -> None:
    fake, port = fake_epp
    fake.buffered = True
    client = EppClient()
    _, resp = await _route(_config(port, tls=fake.tls), client=client)
    assert _set_headers(resp)[hdr.ORIGINAL_DST_HEADER] == "10.0.0.2:8000"
    assert resp.request_body.response.body_mutation.body == b'{"model": "llama-lora"}'
    await client.close()


async def test_a_client_gone_mid_exchange_ends_the_epps_stream(fake_epp: tuple[FakeEpp, int]) -> None:
    fake, port = fake_epp
    fake.delay = 30.0
    client = EppClient()
    task = asyncio.ensure_future(_route(_config(port, tls=fake.tls), client=client))
    while len(fake.received) < 2:  # noqa: ASYNC110 - the fake has no event to wait on
        await asyncio.sleep(0.01)
    task.cancel()  # what the ext_proc's stream handler gets when Envoy resets the stream
    with contextlib.suppress(asyncio.CancelledError):
        await task
    # the fake is still sleeping on its answer; the RPC's end reaches the server as a cancellation
    await asyncio.wait_for(_cancelled(port, fake), 5)
    await client.close()


async def _cancelled(port: int, fake: FakeEpp) -> None:
    while not fake.cancelled:  # noqa: ASYNC110
        await asyncio.sleep(0.01)


async def test_old_epp_addresses_are_let_go(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(epp_module, "MAX_CHANNELS", 2)
    client = EppClient()
    for i in range(1, 4):
        await client._channel(f"127.0.0.{i}:9002", tls=True)  # channels connect lazily: nothing listens
    assert [a for a, _ in client._channels] == ["127.0.0.2:9002", "127.0.0.3:9002"]
    tunnel_dirs = {a: t.path.parent for a, t in client._tunnels.items()}
    assert set(tunnel_dirs) == {"127.0.0.2:9002", "127.0.0.3:9002"}
    await client.close()
    assert not any(d.exists() for d in tunnel_dirs.values())


def test_valid_endpoint() -> None:
    ports = frozenset({8000})
    assert valid_endpoint("10.0.0.1:8000", ports) == "10.0.0.1:8000"
    assert valid_endpoint("10.0.0.1:8000,10.0.0.2:8000", ports) == "10.0.0.1:8000"
    assert valid_endpoint("[fd00::1]:8000", ports) == "[fd00::1]:8000"
    for bad in ("fd00::1:8000", "10.0.0.1:8001", "host:8000", "10.0.0.1", "", "10.0.0.1:80a"):
        assert valid_endpoint(bad, ports) is None, bad
