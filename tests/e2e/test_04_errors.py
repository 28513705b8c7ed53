"""Scenario 4: a model no rule serves gets a 404 with an OpenAI-style JSON error, and a body that is not JSON
gets a 400; neither reaches an upstream."""

from __future__ import annotations

from tests.e2e import objects
from tests.e2e.client import chat, request
from tests.e2e.harness import Scenario, Upstreams


def test_unknown_model_404_and_malformed_json_400(scn: Scenario, upstreams: Upstreams) -> None:
    up = upstreams.start("known", "127.0.0.41")
    scn.apply(
        *objects.direct_backend("known", scn.ns, up.host, up.port),
        objects.route_to_backend("known", scn.ns, scn.gateway, "known-model", "known"),
    )
    scn.wait_ok("known-model", upstream="known")
    upstreams.reset()

    unknown = chat(scn.port, "no-such-model")
    assert unknown.status == 404, unknown.body
    assert unknown.headers.get("content-type", "").startswith("application/json")
    assert "message" in unknown.json()["error"]

    malformed = request(scn.port, b'{"model": "known-model", "messages": [')
    assert malformed.status == 400, malformed.body
    assert malformed.headers.get("content-type", "").startswith("application/json")
    assert "message" in malformed.json()["error"]

    assert upstreams.counts() == {"known": 0}
