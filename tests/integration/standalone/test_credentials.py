"""``aigw run``'s ext_proc injects the API key of ``gpt-4o-mini``'s backend; only the run's own Envoy,
holding a client certificate from the run's throwaway CA (whose key is never written), can open a stream to
it. Another local process gets no stream, hence no key: plaintext, TLS without a certificate, or a
certificate of its own CA."""

from __future__ import annotations

from pathlib import Path

import grpc
import orjson
import pytest

from tests.integration.standalone.harness import Prepared, aigw_run, cmdline
from tests.realparts.extprocclient import chat_for
from tests.realparts.tinyca import TinyCA

pytestmark = pytest.mark.envoy


async def test_only_the_runs_envoy_reaches_the_extproc(examples: Prepared, tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    with aigw_run([examples.directory], workdir=workdir) as run:
        reply = run.chat("gpt-4o-mini")
        assert reply.status == 200, reply.body  # Envoy's client certificate works, and the key is injected
        assert orjson.loads(reply.body)["echo"]["headers"].get("authorization")
        argv = next(cmdline(p) for p in run.descendants() if "extproc.main" in cmdline(p)).split()
        target = argv[argv.index("--listen") + 1]
        run_ca = (workdir / "tls" / "ca.crt").read_bytes()
        assert not (workdir / "tls" / "ca.key").exists()
        assert all(oct(p.stat().st_mode & 0o077) == "0o0" for p in (workdir / "tls").iterdir())
        own_ca = TinyCA("a local process")
        own = own_ca.issue("me", client=True)
        strangers = {
            "plaintext": grpc.aio.insecure_channel(target),
            "TLS, no client certificate": grpc.aio.secure_channel(
                target, grpc.ssl_channel_credentials(root_certificates=run_ca)
            ),
            "its own CA's certificate": grpc.aio.secure_channel(
                target,
                grpc.ssl_channel_credentials(
                    root_certificates=run_ca, private_key=own.key_pem, certificate_chain=own.cert_pem
                ),
            ),
        }
        for what, channel in strangers.items():
            async with channel:
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await chat_for(channel, "gpt-4o-mini")
                assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, what


def test_envoy_at_debug_level_logs_no_credential(examples: Prepared, tmp_path: Path) -> None:
    # Envoy's debug log dumps every request's headers and the ext_proc's answers, the backend key among them
    secret = "sk-client-SECRET-4242"
    with aigw_run(
        [examples.directory], workdir=tmp_path / "work", extra_args=["--envoy-log-level", "debug"]
    ) as run:
        r = run.chat("gpt-4o-mini", headers={"authorization": f"Bearer {secret}"})
        assert r.status == 200, r.body
        assert r.headers["x-echo-authorization-present"] == "true"
        run.wait_for(r"string_value: \"<redacted>\"")  # the metadata dump with the key was printed, redacted
        run.wait_for(r"'authorization', '<redacted>'")
        output = run.output()
    assert "sk-demo-not-a-real-key" not in output
    assert secret not in output
