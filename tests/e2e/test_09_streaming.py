"""Scenario 9: a streamed (SSE) completion reaches the client chunk by chunk as the upstream sends it (not
buffered to the end), and the ext_proc's usage metrics count the tokens the stream reported."""

from __future__ import annotations

from tests.e2e import artifacts, objects
from tests.e2e.client import stream_chat
from tests.e2e.harness import Scenario, Upstreams, metric_sum, metrics_text
from tests.e2e.kube import wait_for

CHUNKS = 5
DELAY_MS = 400
PROMPT_TOKENS, COMPLETION_TOKENS = 7, 11


def _tokens(text: str, model: str, kind: str) -> float:
    return metric_sum(
        text, "gen_ai_client_token_usage_sum", gen_ai_request_model=model, gen_ai_token_type=kind
    )


def test_sse_streams_through_and_usage_is_counted(scn: Scenario, upstreams: Upstreams) -> None:
    up = upstreams.start("streamer", "127.0.0.91")
    scn.apply(
        *objects.direct_backend("streamer", scn.ns, up.host, up.port),
        objects.ai_gateway_route(
            "stream",
            scn.ns,
            scn.gateway,
            [
                objects.rule(model="stream-model", backends=[("AIServiceBackend", "streamer", 1)]),
                objects.rule(model="stream-usage", backends=[("AIServiceBackend", "streamer", 1)]),
            ],
        ),
    )
    # Probe with one model; measure with another that no other request used, so its token counters hold
    # exactly this stream's usage (the ext_proc records metrics when its stream ends, after the client).
    scn.wait_ok("stream-model", upstream="streamer")

    reply = stream_chat(
        scn.port,
        "stream-usage",
        headers={
            "x-response-chunks": str(CHUNKS),
            "x-response-delay-ms": str(DELAY_MS),
            "x-response-usage": f"{PROMPT_TOKENS},{COMPLETION_TOKENS}",
        },
    )
    assert reply.status == 200
    assert reply.headers.get("content-type", "").startswith("text/event-stream")
    assert reply.events[-1][1] == "[DONE]"
    content = [t for t, data in reply.events if '"delta"' in data]
    assert len(content) == CHUNKS, reply.events
    # Sent DELAY_MS apart: if Envoy or the ext_proc buffered the stream, they would all arrive together.
    spread = content[-1] - content[0]
    artifacts.measure(
        f"9. SSE: {CHUNKS} chunks sent {DELAY_MS} ms apart arrived at (s)", [round(t, 2) for t in content]
    )
    assert spread >= (CHUNKS - 1) * DELAY_MS / 1000 * 0.7, [round(t, 3) for t, _ in reply.events]

    def counted() -> tuple[float, float] | None:
        text = metrics_text(scn.extproc_metrics)  # one scrape: both values from the same instant
        got = (_tokens(text, "stream-usage", "input"), _tokens(text, "stream-usage", "output"))
        return got if all(got) else None  # both observed (the ext_proc observes one after the other)

    got = wait_for(counted, "token usage metrics for model stream-usage", timeout=15)
    lines = [ln for ln in metrics_text(scn.extproc_metrics).splitlines() if "stream-usage" in ln]
    assert got == (PROMPT_TOKENS, COMPLETION_TOKENS), "\n".join(lines)
