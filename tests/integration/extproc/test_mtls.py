"""Credential protection: with ``--tls-cert/--tls-key/--tls-client-ca`` the ext_proc serves only clients with
a certificate from the gateway's CA. Any other gRPC client (no certificate, a certificate from another CA,
plaintext) gets no stream at all, so never the ``authorization: Bearer <key>`` the ext_proc injects; the
gateway's client does. Rotating the CA file takes effect without a restart. Real gRPC TLS (BoringSSL) on
loopback; certificates from a throwaway CA."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import orjson
import pytest
import yaml
from envoy.config.core.v3 import base_pb2 as core
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep

from extproc.app import ExtProcApp
from extproc.server import SERVICE_NAME
from extproc.tls import MutualTLSFiles
from tests.realparts.ports import free_port
from tests.realparts.tinyca import KeyPair, TinyCA
from tests.unit.extproc.configs import simple_config

pytestmark = pytest.mark.timeout(60)

SECRET = "sk-only-for-the-gateway"


async def _ask_for_model(channel: grpc.aio.Channel) -> list[ep.ProcessingResponse]:
    process = channel.stream_stream(
        f"/{SERVICE_NAME}/Process",
        request_serializer=ep.ProcessingRequest.SerializeToString,
        response_deserializer=ep.ProcessingResponse.FromString,
    )

    async def messages() -> AsyncIterator[ep.ProcessingRequest]:
        hs = [(":path", "/v1/chat/completions"), (":method", "POST"), ("content-type", "application/json")]
        headers = core.HeaderMap(headers=[core.HeaderValue(key=k, raw_value=v.encode()) for k, v in hs])
        yield ep.ProcessingRequest(request_headers=ep.HttpHeaders(headers=headers))
        yield ep.ProcessingRequest(
            request_body=ep.HttpBody(body=orjson.dumps({"model": "m1"}), end_of_stream=True)
        )

    return [a async for a in process(messages(), timeout=10)]


def _credentials_seen(answers: list[ep.ProcessingResponse]) -> list[bytes]:
    return [
        h.header.raw_value
        for a in answers
        for h in a.request_body.response.header_mutation.set_headers
        if h.header.key == "authorization"
    ]


def _client(ca: TinyCA, pair: KeyPair | None) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=ca.pair.cert_pem,
        private_key=pair.key_pem if pair else None,
        certificate_chain=pair.cert_pem if pair else None,
    )


@pytest.fixture
def files(tmp_path: Path) -> Iterator[tuple[TinyCA, MutualTLSFiles, Path]]:
    ca = TinyCA("gateway-ca")
    server = ca.issue("extproc", ip_addresses=("127.0.0.1",), server=True)
    tls = MutualTLSFiles(cert=tmp_path / "tls.crt", key=tmp_path / "tls.key", client_ca=tmp_path / "ca.crt")
    server.write_pair(tls.cert, tls.key)
    tls.client_ca.write_bytes(ca.pair.cert_pem)
    (tmp_path / "key").write_text(SECRET)
    cfg = simple_config()
    cfg["backends"][0]["auth"] = {"apiKey": {"filename": str(tmp_path / "key")}}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    yield ca, tls, tmp_path / "cfg.yaml"


async def test_only_a_client_with_the_gateway_certificate_gets_the_credential(
    files: tuple[TinyCA, MutualTLSFiles, Path],
) -> None:
    ca, tls, cfg = files
    port = free_port()
    app = ExtProcApp(config_path=cfg, listen=f"127.0.0.1:{port}", metrics_listen=None, tls=tls)
    await app.start()
    target = f"127.0.0.1:{port}"
    try:
        gateway = ca.issue("envoy", client=True)
        async with grpc.aio.secure_channel(target, _client(ca, gateway)) as channel:
            assert _credentials_seen(await _ask_for_model(channel)) == [f"Bearer {SECRET}".encode()]

        rogue_ca = TinyCA("someone-else")
        strangers = {
            "no client certificate": grpc.aio.secure_channel(target, _client(ca, None)),
            "a certificate from another CA": grpc.aio.secure_channel(
                target, _client(ca, rogue_ca.issue("pod", client=True))
            ),
            "plaintext": grpc.aio.insecure_channel(target),
        }
        for what, channel in strangers.items():
            async with channel:
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await _ask_for_model(channel)
                assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, what

        # rotation: a new CA file replaces the old one at the next handshake, no restart
        new_ca = TinyCA("gateway-ca-2")
        tmp = tls.client_ca.with_suffix(".tmp")
        tmp.write_bytes(new_ca.pair.cert_pem)
        os.replace(tmp, tls.client_ca)
        async with grpc.aio.secure_channel(
            target, _client(ca, ca.issue("envoy-old", client=True))
        ) as channel:
            with pytest.raises(grpc.aio.AioRpcError):
                await _ask_for_model(channel)
        async with grpc.aio.secure_channel(
            target, _client(ca, new_ca.issue("envoy-new", client=True))
        ) as channel:
            assert _credentials_seen(await _ask_for_model(channel)) == [f"Bearer {SECRET}".encode()]
    finally:
        await app.stop(grace=1)
