"""Credential protection: with ``--tls-cert/--tls-key/--tls-client-ca`` the ext_proc serves only clients with
a certificate from the gateway's CA. Any other gRPC client (no certificate, a certificate from another CA,
plaintext) gets no stream at all, so never the ``authorization: Bearer <key>`` the ext_proc injects; the
gateway's client does. Rotating the CA file takes effect without a restart. Real gRPC TLS (BoringSSL) on
loopback; certificates from a throwaway CA."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import yaml

from extproc.app import ExtProcApp
from extproc.tls import MutualTLSFiles
from tests.realparts.extprocclient import authorization_set, chat_for
from tests.realparts.ports import free_port
from tests.realparts.tinyca import KeyPair, TinyCA
from tests.unit.extproc.configs import simple_config

pytestmark = pytest.mark.timeout(60)

SECRET = "sk-only-for-the-gateway"


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
            assert authorization_set(await chat_for(channel, "m1")) == [f"Bearer {SECRET}".encode()]

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
                    await chat_for(channel, "m1")
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
                await chat_for(channel, "m1")
        async with grpc.aio.secure_channel(
            target, _client(ca, new_ca.issue("envoy-new", client=True))
        ) as channel:
            assert authorization_set(await chat_for(channel, "m1")) == [f"Bearer {SECRET}".encode()]
    finally:
        await app.stop(grace=1)
