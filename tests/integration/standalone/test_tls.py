"""A hosted-API style backend: a Backend with a hostname and ``spec.tls`` is reached over TLS, with the
hostname as SNI and as ``Host``, and Envoy resolves the name itself (STRICT_DNS), as Envoy Gateway does.

The upstream is a real TLS server with a certificate from our test CA; ``insecureSkipVerify: true`` because
that CA is not in the system bundle (verification against the system bundle is checked by the validation test
in ``test_inputs.py``).
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.integration.standalone.harness import aigw_run
from tests.realparts.tinyca import TinyCA

pytestmark = pytest.mark.envoy


class _Seen:
    def __init__(self) -> None:
        self.sni: list[str | None] = []
        self.hosts: list[str] = []
        self.authorization: list[str] = []


@pytest.fixture
def tls_upstream(tmp_path: Path) -> Iterator[tuple[int, _Seen]]:
    ca = TinyCA("aigw-test-ca")
    pair = ca.issue("localhost", dns_names=("localhost",), server=True)
    pair.write_pair(tmp_path / "tls.crt", tmp_path / "tls.key")
    seen = _Seen()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    context.sni_callback = lambda _sock, name, _ctx: seen.sni.append(name)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            seen.hosts.append(self.headers.get("host", ""))
            seen.authorization.append(self.headers.get("authorization", ""))
            body = json.dumps(
                {
                    "id": "x",
                    "object": "chat.completion",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "tls"}}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }
            ).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()


_CONFIG = """\
apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: AIGatewayRoute
metadata: {{name: hosted}}
spec:
  targetRefs: [{{group: gateway.networking.k8s.io, kind: Gateway, name: local}}]
  schema: {{name: OpenAI}}
  rules:
  - matches: [{{headers: [{{name: x-ai-eg-model, value: hosted-model}}]}}]
    backendRefs: [{{name: hosted}}]
---
apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: AIServiceBackend
metadata: {{name: hosted}}
spec:
  schema: {{name: OpenAI}}
  backendRef: {{group: gateway.envoyproxy.io, kind: Backend, name: hosted}}
  backendSecurityPolicyRef: {{group: aigateway.envoyproxy.io, kind: BackendSecurityPolicy, name: key}}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata: {{name: hosted}}
spec:
  endpoints: [{{fqdn: {{hostname: localhost, port: {port}}}}}]
  tls: {{insecureSkipVerify: true}}
---
apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: BackendSecurityPolicy
metadata: {{name: key}}
spec:
  type: APIKey
  apiKey: {{secretRef: {{name: key}}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: key}}
stringData: {{apiKey: sk-hosted}}
"""


def test_a_tls_backend_by_hostname(tls_upstream: tuple[int, _Seen], tmp_path: Path) -> None:
    port, seen = tls_upstream
    config = tmp_path / "hosted.yaml"
    config.write_text(_CONFIG.format(port=port))
    with aigw_run([config], workdir=tmp_path / "work") as run:
        r = run.chat("hosted-model")
        assert r.status == 200, (r.status, r.body, run.output()[-3000:])
        assert r.json()["choices"][0]["message"]["content"] == "tls"
    assert seen.sni and set(seen.sni) == {"localhost"}
    assert seen.hosts == ["localhost"]
    assert seen.authorization == ["Bearer sk-hosted"]
