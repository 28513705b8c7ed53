"""The TLS material the controller issues for ``--extproc-mtls`` works with the real ext_proc: Envoy's client
certificate gets the credential, checked against the server certificate by the Service name Envoy Gateway uses
(SNI); a client certificate the controller did not issue gets nothing. Real gRPC TLS on loopback."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
import yaml

from controller.gateway.extproc_tls import ensure_material
from extproc.app import ExtProcApp
from extproc.tls import MutualTLSFiles
from tests.realparts.extprocclient import authorization_set, chat_for
from tests.realparts.ports import free_port
from tests.unit.extproc.configs import simple_config

pytestmark = pytest.mark.timeout(60)

HOST = "ai-eg-extproc-gw.default.svc.cluster.local"
SECRET = "sk-for-envoy-only"


async def test_the_controllers_material_admits_envoy_and_no_one_else(tmp_path: Path) -> None:
    m = ensure_material({}, dns_names=(HOST, "ai-eg-extproc-gw.default.svc", "ai-eg-extproc-gw"))
    tls = MutualTLSFiles(cert=tmp_path / "tls.crt", key=tmp_path / "tls.key", client_ca=tmp_path / "ca.crt")
    for path, key in ((tls.cert, "tls.crt"), (tls.key, "tls.key"), (tls.client_ca, "ca.crt")):
        path.write_text(m[key])  # the three files the Deployment mounts
    (tmp_path / "key").write_text(SECRET)
    cfg = simple_config()
    cfg["backends"][0]["auth"] = {"apiKey": {"filename": str(tmp_path / "key")}}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    port = free_port()
    app = ExtProcApp(
        config_path=tmp_path / "cfg.yaml", listen=f"127.0.0.1:{port}", metrics_listen=None, tls=tls
    )
    await app.start()
    target = f"127.0.0.1:{port}"
    as_service = (("grpc.ssl_target_name_override", HOST),)  # what Envoy checks: the Backend's sni
    try:
        envoy = grpc.ssl_channel_credentials(
            root_certificates=m["ca.crt"].encode(),
            private_key=m["client.key"].encode(),
            certificate_chain=m["client.crt"].encode(),
        )
        async with grpc.aio.secure_channel(target, envoy, options=as_service) as channel:
            assert authorization_set(await chat_for(channel, "m1")) == [f"Bearer {SECRET}".encode()]

        other = ensure_material({}, dns_names=(HOST,))  # another Gateway's material
        stranger = grpc.ssl_channel_credentials(
            root_certificates=m["ca.crt"].encode(),
            private_key=other["client.key"].encode(),
            certificate_chain=other["client.crt"].encode(),
        )
        async with grpc.aio.secure_channel(target, stranger, options=as_service) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await chat_for(channel, "m1")
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await app.stop(grace=1)
