"""The gRPC server itself: Unix socket, gRPC health, one Process stream, graceful stop, the CLI."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import orjson
import pytest
import yaml
from envoy.config.core.v3 import base_pb2 as core
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from grpc_health.v1 import health_pb2, health_pb2_grpc

from extproc.app import ExtProcApp
from extproc.server import SERVICE_NAME
from tests.integration.extproc.harness import REPO_ROOT, running_extproc
from tests.realparts.ports import free_port
from tests.unit.extproc.configs import simple_config

pytestmark = pytest.mark.timeout(60)


async def test_serves_health_and_streams_on_a_unix_socket(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(simple_config()))
    sock = tmp_path / "extproc.sock"
    app = ExtProcApp(config_path=cfg, listen=f"unix:{sock}", metrics_listen=None)
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"unix:{sock}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for service in ("", SERVICE_NAME):
                reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
                assert reply.status == health_pb2.HealthCheckResponse.SERVING

            process = channel.stream_stream(
                f"/{SERVICE_NAME}/Process",
                request_serializer=ep.ProcessingRequest.SerializeToString,
                response_deserializer=ep.ProcessingResponse.FromString,
            )

            async def one_request() -> AsyncIterator[ep.ProcessingRequest]:
                headers = core.HeaderMap(
                    headers=[
                        core.HeaderValue(key=":path", raw_value=b"/v1/models"),
                        core.HeaderValue(key=":method", raw_value=b"GET"),
                    ]
                )
                yield ep.ProcessingRequest(
                    request_headers=ep.HttpHeaders(headers=headers, end_of_stream=True)
                )

            answers = [a async for a in process(one_request())]
        assert len(answers) == 1
        assert answers[0].immediate_response.status.code == 200
        ids = [m["id"] for m in orjson.loads(answers[0].immediate_response.body)["data"]]
        assert "m1" in ids
    finally:
        await app.stop(grace=1)


def test_sigterm_stops_the_process_cleanly(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(simple_config()))
    with running_extproc(config_path=cfg, workdir=tmp_path) as ext:
        ext.proc.send_signal(signal.SIGTERM)
        assert ext.proc.wait(timeout=10) == 0
    assert "stopping: draining open streams" in ext.log_path.read_text()


def test_help_documents_the_flags() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "extproc.main", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        check=True,
    ).stdout
    for flag in ("--config", "--listen", "--metrics-listen", "--reload-interval", "unix:"):
        assert flag in out


@pytest.mark.parametrize("how", ["reset", "half_close"])
async def test_a_stream_that_ends_without_its_response_releases_the_in_flight_count(
    tmp_path: Path, how: str
) -> None:
    # Envoy resets the ext_proc stream when the client disconnects or the upstream fails mid-request; the
    # endpoint picked for it must not stay counted as busy.
    cfg_doc = simple_config()
    closed = [{"ip": "127.0.0.1", "port": free_port()}, {"ip": "127.0.0.2", "port": free_port()}]
    cfg_doc["pools"][0]["members"][0]["endpoints"] = closed  # loopback only; nothing listens: scrapes fail
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(cfg_doc))
    sock = tmp_path / "extproc.sock"
    app = ExtProcApp(config_path=cfg, listen=f"unix:{sock}", metrics_listen=None)
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"unix:{sock}") as channel:
            process = channel.stream_stream(
                f"/{SERVICE_NAME}/Process",
                request_serializer=ep.ProcessingRequest.SerializeToString,
                response_deserializer=ep.ProcessingResponse.FromString,
            )
            call = process()
            headers = core.HeaderMap(
                headers=[
                    core.HeaderValue(key=":path", raw_value=b"/v1/chat/completions"),
                    core.HeaderValue(key=":method", raw_value=b"POST"),
                ]
            )
            await call.write(ep.ProcessingRequest(request_headers=ep.HttpHeaders(headers=headers)))
            await call.read()
            body = orjson.dumps({"model": "p-model", "messages": [{"role": "user", "content": "hi"}]})
            await call.write(ep.ProcessingRequest(request_body=ep.HttpBody(body=body, end_of_stream=True)))
            picked = await call.read()
            assert picked.HasField("request_body"), picked
            assert app.signals.total_inflight() == 1
            if how == "reset":
                call.cancel()
            else:
                await call.done_writing()
                assert await call.read() is grpc.aio.EOF
            for _ in range(1000):  # the server notices the reset on its own loop turn: up to 10 s
                if not app.signals.total_inflight():
                    break
                await asyncio.sleep(0.01)
            assert app.signals.total_inflight() == 0
    finally:
        await app.stop(grace=1)
