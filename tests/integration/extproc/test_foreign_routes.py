"""Routes that someone else attached to the same listener, and that outrank ours, never get a credential.

Real Envoy, our ext_proc as its own process, two fake upstreams: ``ours`` (the backend ``openai-a.default``,
whose key is ``sk-ours-secret``) and ``theirs``. The foreign route matches what the ext_proc sets for our
backend plus one more header, so (listed first, as Gateway API precedence puts the more specific match) it
takes every request that carries that header. The ext_proc puts the key into dynamic metadata only; our routes
copy it into ``authorization`` at the router, the foreign one does not.

The second test shows why the extension server also disables foreign routes that read the credential metadata:
Envoy evaluates command operators in any route's header values (Envoy Gateway copies an HTTPRoute's
``RequestHeaderModifier`` values verbatim), so without that guard such a route gets the key.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from envoy.config.route.v3.route_components_pb2 import VirtualHost
from google.protobuf import json_format

from aigw.upstream import FakeUpstream, serve_in_thread
from api import headers as hdr
from controller.extensionserver.credentials import route_credentials
from tests.integration.extproc.gatewayconfig import model_match
from tests.integration.extproc.harness import Gateway, gateway_in_front

KEY = "sk-ours-secret"
OURS = "openai-a.default"
LEAK = "x-gateway-leak"
"""A header the fake upstream echoes verbatim."""


def _foreign_route(**extra: Any) -> dict[str, Any]:
    return {
        "name": "httproute/team/outranker/rule/0/match/0/*",
        "match": {
            "prefix": "/",
            "headers": [
                {"name": hdr.SELECTED_BACKEND_HEADER, "string_match": {"exact": OURS}},
                {"name": "x-team", "string_match": {"exact": "a"}},
            ],
        },
        "route": {"cluster": "theirs", "timeout": "30s"},
        **extra,
    }


def _leaking_route() -> dict[str, Any]:
    value = f"%DYNAMIC_METADATA({hdr.CREDENTIAL_METADATA_NAMESPACE}:authorization)%"
    return _foreign_route(request_headers_to_add=[{"header": {"key": LEAK, "value": value}}])


def _guarded(routes: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``routes`` (none of them ours) after the extension server's credential guard."""
    vh = json_format.ParseDict({"name": "vh", "domains": ["*"], "routes": list(routes)}, VirtualHost())
    out = route_credentials(vh, generated=lambda _source, _gateway: False).virtual_host
    return list(json_format.MessageToDict(out, preserving_proto_field_name=True)["routes"])


@contextlib.contextmanager
def _gateway(tmp_path: Path, foreign: Sequence[dict[str, Any]]) -> Iterator[tuple[Gateway, FakeUpstream]]:
    (tmp_path / "key").write_text(KEY + "\n")
    config = {
        "version": "v1",
        "rules": [{"route": "default/r", "matches": [model_match("gpt-a")], "backendRefs": [{"name": OURS}]}],
        "backends": [{"name": OURS, "schema": {"name": "OpenAI"}, "auth": {"apiKey": {"filename": "key"}}}],
    }
    config_path = tmp_path / "filter-config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    with contextlib.ExitStack() as stack:
        ours = stack.enter_context(serve_in_thread(name="ours"))
        theirs = stack.enter_context(serve_in_thread(name="theirs"))
        gw = gateway_in_front(
            stack,
            config_path=config_path,
            workdir=tmp_path,
            backends={OURS: ours.port, "theirs": theirs.port},
            foreign_routes=foreign,
        )
        yield gw, theirs


def test_our_route_gets_the_key_and_a_route_that_outranks_it_does_not(tmp_path: Path) -> None:
    with _gateway(tmp_path, [_foreign_route()]) as (gw, theirs):
        r = gw.chat("gpt-a")
        assert r.status == 200, r.body
        assert r.json()["echo"]["upstream"] == "ours"
        assert r.json()["echo"]["headers"]["authorization"] == f"<{len('Bearer ' + KEY)} chars>"

        r = gw.chat("gpt-a", headers={"x-team": "a"})
        assert r.status == 200, r.body
        echo = r.json()["echo"]
        assert echo["upstream"] == "theirs"  # the foreign route did outrank ours
        assert echo["headers"][hdr.SELECTED_BACKEND_HEADER] == OURS
        assert "authorization" not in echo["headers"] and "api-key" not in echo["headers"]
        # a client's own credential still reaches whichever route it chose, unchanged
        r = gw.chat("gpt-a", headers={"x-team": "a", "authorization": "Bearer the-clients-own"})
        assert r.json()["echo"]["headers"]["authorization"] == f"<{len('Bearer the-clients-own')} chars>"
        assert len(theirs.received) == 2


@pytest.mark.parametrize("guarded", [False, True], ids=["without-the-guard", "with-the-guard"])
def test_a_foreign_route_that_copies_the_credential_metadata(tmp_path: Path, guarded: bool) -> None:
    foreign = _guarded([_leaking_route()]) if guarded else [_leaking_route()]
    with _gateway(tmp_path, foreign) as (gw, theirs):
        r = gw.chat("gpt-a", headers={"x-team": "a"})
        if not guarded:
            # the threat is real: Envoy evaluates the operator in a route's header value
            assert r.status == 200 and r.json()["echo"]["headers"][LEAK] == f"Bearer {KEY}"
            return
        assert r.status == 403, r.body
        assert KEY not in r.body.decode(errors="replace")
        assert not theirs.received
        assert gw.chat("gpt-a").json()["echo"]["upstream"] == "ours"  # our route is unaffected
