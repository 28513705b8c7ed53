"""``aigw run`` end to end: the real command, the real Envoy, our ext_proc and demo upstreams as its children.

What each test measures:
- the shipped examples serve: pool requests succeed and land on all three pool endpoints, the API-key backend
  gets its credential, ``/v1/models`` lists the routed models, an unknown model is a 404;
- editing a YAML file changes routing while the same Envoy keeps running, with no failed request meanwhile;
- a broken file (bad YAML, or a schema violation) is reported with its path and reason, the previous config
  keeps serving, and fixing the file is picked up;
- after SIGTERM, SIGINT, or even SIGKILL of ``aigw`` itself, no process it started is left.
"""

from __future__ import annotations

import re
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.standalone.harness import (
    POOL_HOSTS,
    Prepared,
    aigw_run,
    alive,
    burst_upstream_names,
    cmdline,
    upstream_names,
)
from tests.realparts.httpclient import request
from tests.realparts.ports import free_port

pytestmark = pytest.mark.envoy


def test_examples_route_through_envoy_and_spread_over_the_pool(examples: Prepared, tmp_path: Path) -> None:
    with aigw_run([examples.directory], workdir=tmp_path / "work") as run:
        banner = run.output()
        assert f"curl -s http://127.0.0.1:{run.port}/v1/chat/completions" in banner
        assert f"curl -s http://127.0.0.1:{run.port}/v1/models" in banner
        assert '"model": "demo-llm"' in banner

        names = burst_upstream_names(run, "demo-llm", n=36)
        counts = Counter(names)
        # 12 at a time, each lasting about a second on the simulated replicas: any picker that looks at load
        # (or draws at random) uses every replica.
        assert set(counts) == {"demo-llm-1", "demo-llm-2", "demo-llm-3"}, counts
        # Each replica's vLLM metrics count exactly the requests it answered (demo-llm-N on POOL_HOSTS[N-1]).
        answered = "vllm:e2e_request_latency_seconds_count"
        served = {
            f"demo-llm-{i}": _replica_metric(host, examples.pool_port, answered)
            for i, host in enumerate(POOL_HOSTS, start=1)
        }
        assert served == dict(counts), (served, counts)

        r = run.chat("gpt-4o-mini")
        assert r.status == 200, r.body
        assert r.headers["x-upstream-name"] == "openai-compatible"
        assert r.headers["x-echo-authorization-present"] == "true"
        # "Bearer sk-demo-not-a-real-key" from the example Secret, mounted by aigw as a file for the ext_proc.
        assert (
            r.json()["echo"]["headers"]["authorization"] == f"<{len('Bearer sk-demo-not-a-real-key')} chars>"
        )

        models = run.request("/v1/models")
        assert models.status == 200
        assert {m["id"] for m in models.json()["data"]} >= {"demo-llm", "gpt-4o-mini"}

        missing = run.chat("no-such-model")
        assert missing.status == 404, missing.body
        assert missing.json()["error"]["code"] == "model_not_found"

        # A client's own routing headers on a request the gateway refuses (here without a body, so it is
        # refused at its headers: a GET is 405) never reach the log as if the gateway had chosen that backend
        # or model.
        since = run.mark()
        spoofed = run.request(
            "/v1/chat/completions",
            headers={
                "x-ai-eg-selected-backend": "openai-compatible.default",
                "x-ai-eg-model": "spoofed-model",
            },
        )
        assert spoofed.status == 405, spoofed.body
        line = run.wait_for(r"/v1/chat/completions -> 405 .*", since=since).group(0)
        assert "spoofed-model" not in line and "openai-compatible" not in line, line

        # One access log line per request, readable: method, path, status, model, upstream.
        run.wait_for(r"POST /v1/chat/completions -> 200 .*model=gpt-4o-mini .*upstream=127\.0\.0\.1:")


def _replica_metric(host: str, port: int, sample: str) -> float:
    """One unlabelled sample of a demo replica's ``/metrics``, read with prometheus_client's parser."""
    reply = request(port, "/metrics", host=host, method="GET", timeout=10)
    assert reply.status == 200, reply.body
    for family in text_string_to_metric_families(reply.body.decode()):
        for s in family.samples:
            if s.name == sample:
                return s.value
    raise AssertionError(f"{sample} missing from http://{host}:{port}/metrics")


def _traffic(run_chat: object, stop: threading.Event, failures: list[str], ok: list[int]) -> None:
    while not stop.is_set():
        try:
            r = run_chat("demo-llm")  # type: ignore[operator]
            if r.status != 200:
                failures.append(f"{r.status} {r.body[:200]!r}")
            else:
                ok.append(1)
        except OSError as e:
            failures.append(repr(e))


def _envoy_pid(run_descendants: dict[int, int]) -> int:
    pids = [p for p in run_descendants if "envoy" in cmdline(p).split()[0]]
    assert len(pids) == 1, {p: cmdline(p) for p in run_descendants}
    return pids[0]


def test_editing_a_file_changes_routing_without_a_restart_or_a_failed_request(
    examples: Prepared, tmp_path: Path
) -> None:
    with aigw_run([examples.directory], workdir=tmp_path / "work") as run:
        envoy_before = _envoy_pid(run.descendants())
        assert run.chat("gpt-4o-mini").headers["x-upstream-name"] == "openai-compatible"
        assert run.chat("new-model").status == 404

        stop = threading.Event()
        failures: list[str] = []
        ok: list[int] = []
        worker = threading.Thread(target=_traffic, args=(run.chat, stop, failures, ok))
        worker.start()
        try:
            since = run.mark()
            # 1. Send demo-llm to the API-key backend instead of the pool.
            route = examples.directory / "gateway.yaml"
            text = route.read_text()
            route.write_text(
                text.replace(
                    "    backendRefs:\n    - kind: InferencePool\n      name: demo-pool\n",
                    "    backendRefs:\n    - name: openai-compatible\n",
                )
            )
            run.wait_for(r"config \w+ is serving", since=since, timeout=20)
            assert set(upstream_names(run, "demo-llm", n=6)) == {"openai-compatible"}

            # 2. A new file: a new backend with its own cluster and demo upstream, and a rule for a new model.
            since = run.mark()
            # A port the kernel says is free now. A neighbour of a free port is not: it may be the local
            # end of one of Envoy's client connections, and then aigw refuses to start a demo upstream there.
            new_port = free_port()
            (examples.directory / "zz-new.yaml").write_text(_NEW_BACKEND.format(port=new_port))
            route.write_text(route.read_text() + _NEW_RULE)
            run.wait_for(r"config \w+ is serving", since=since, timeout=20)
            r = run.chat("new-model")
            assert r.status == 200, (r.body, run.output()[-3000:])
            assert r.headers["x-upstream-name"] == "new-backend"

            # 3. Remove it again: its cluster goes, and the model is unknown once more.
            since = run.mark()
            (examples.directory / "zz-new.yaml").unlink()
            route.write_text(route.read_text().replace(_NEW_RULE, ""))
            run.wait_for(r"config \w+ is serving", since=since, timeout=20)
            assert run.chat("new-model").status == 404
            time.sleep(0.5)
        finally:
            stop.set()
            worker.join(timeout=30)
        assert not failures, failures[:5]
        assert len(ok) > 10, "the background traffic did not run"
        # Same Envoy process: clusters and routes changed through its watched files, not a restart.
        assert _envoy_pid(run.descendants()) == envoy_before


_NEW_BACKEND = """\
apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: AIServiceBackend
metadata:
  name: new-backend
spec:
  schema:
    name: OpenAI
  backendRef:
    group: gateway.envoyproxy.io
    kind: Backend
    name: new-backend
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata:
  name: new-backend
  annotations:
    standalone.aigateway.envoyproxy.io/demo-upstream: "true"
spec:
  endpoints:
  - ip:
      address: 127.0.0.1
      port: {port}
"""

_NEW_RULE = """\
  - matches:
    - headers:
      - name: x-ai-eg-model
        value: new-model
    backendRefs:
    - name: new-backend
"""


@pytest.mark.parametrize(
    ("broken", "reason"),
    [
        ("apiVersion: v1\nkind: [unclosed\n", r"not valid YAML: .* at line \d+, column \d+"),
        (
            "apiVersion: aigateway.envoyproxy.io/v1alpha1\nkind: AIGatewayRoute\nmetadata: {name: bad}\n"
            "spec:\n  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: aigw}]\n"
            "  schema: {name: OpenAI}\n"
            "  rules:\n  - matches:\n"
            "    - headers: [{type: RegularExpression, name: x-ai-eg-model, value: a.*}]\n",
            r"AIGatewayRoute default/bad is invalid: spec\.rules\[0\]\.matches\[0\]\.headers.*exact match",
        ),
    ],
    ids=["bad-yaml", "schema-violation"],
)
def test_a_broken_file_is_reported_and_the_previous_config_keeps_serving(
    examples: Prepared, tmp_path: Path, broken: str, reason: str
) -> None:
    with aigw_run([examples.directory], workdir=tmp_path / "work") as run:
        assert run.chat("gpt-4o-mini").status == 200
        bad = examples.directory / "broken.yaml"
        # Also break routing in a good file at the same time: none of it may be applied.
        route = examples.directory / "gateway.yaml"
        good_route = route.read_text()
        since = run.mark()
        route.write_text(good_route.replace("value: gpt-4o-mini", "value: renamed-model"))
        bad.write_text(broken)
        line = run.wait_for(rf"{bad}.*{reason}", since=since, timeout=20)
        assert "ERROR" in line.string
        run.wait_for(r"the previous config keeps serving", since=since, timeout=5)

        for _ in range(5):
            r = run.chat("gpt-4o-mini")
            assert r.status == 200, r.body
            assert r.headers["x-upstream-name"] == "openai-compatible"
        assert run.chat("renamed-model").status == 404
        assert set(upstream_names(run, "demo-llm", n=6)) <= {"demo-llm-1", "demo-llm-2", "demo-llm-3"}

        # Fixing the file applies everything that was waiting.
        since = run.mark()
        bad.unlink()
        run.wait_for(r"config \w+ is serving", since=since, timeout=20)
        assert run.chat("renamed-model").headers["x-upstream-name"] == "openai-compatible"
        assert run.chat("gpt-4o-mini").status == 404


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=lambda s: s.name)
def test_after_a_stop_no_child_process_is_left(
    examples: Prepared, tmp_path: Path, sig: signal.Signals
) -> None:
    with aigw_run([examples.directory], workdir=tmp_path / "work") as run:
        tree = run.descendants()
        commands = {p: cmdline(p) for p in tree}
        # Envoy, the ext_proc and four demo upstreams (3 simulated replicas in the pool, 1 API-key backend).
        assert sum("envoy" in c.split()[0] for c in commands.values()) == 1, commands
        assert sum("extproc.main" in c for c in commands.values()) == 1, commands
        assert sum("aigw.sim" in c for c in commands.values()) == 3, commands
        assert sum("aigw.upstream" in c for c in commands.values()) == 1, commands
        assert all(parent == run.proc.pid for parent in tree.values()), "children must be direct children"

        code = run.stop(sig)
        if sig is signal.SIGKILL:
            assert code == -signal.SIGKILL
        else:
            assert code == 0, run.output()[-2000:]
            run.wait_for(r"stopped; no child process left", timeout=5)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(alive(p) for p in tree):
            time.sleep(0.05)
        left = {p: commands[p] for p in tree if alive(p)}
        assert not left, f"left behind after {sig.name}: {left}"


def test_a_changed_secret_reaches_the_backend_without_a_restart(examples: Prepared, tmp_path: Path) -> None:
    with aigw_run([examples.directory], workdir=tmp_path / "work") as run:
        before = run.chat("gpt-4o-mini").json()["echo"]["headers"]["authorization"]
        assert before == f"<{len('Bearer sk-demo-not-a-real-key')} chars>"
        secret = examples.directory / "openai.yaml"
        rotated = "sk-rotated-0123456789-0123456789"
        secret.write_text(secret.read_text().replace("sk-demo-not-a-real-key", rotated))
        deadline = time.monotonic() + 15
        seen = before
        while time.monotonic() < deadline and seen == before:
            time.sleep(0.2)
            r = run.chat("gpt-4o-mini")
            assert r.status == 200, r.body
            seen = r.json()["echo"]["headers"]["authorization"]
        assert seen == f"<{len('Bearer ' + rotated)} chars>", run.output()[-2000:]
        key_files = list((run.workdir / "auth").iterdir())
        assert [f.read_text() for f in key_files] == [rotated]


def test_a_key_the_ext_proc_would_refuse_is_reported_and_the_old_key_keeps_serving(
    examples: Prepared, tmp_path: Path
) -> None:
    with aigw_run([examples.directory], workdir=tmp_path / "work") as run:
        before = run.chat("gpt-4o-mini").json()["echo"]["headers"]["authorization"]
        secret = examples.directory / "openai.yaml"
        good = secret.read_text()
        since = run.mark()
        # only the Secret changes: the filter config stays the same, so its uuid alone says nothing
        secret.write_text(good.replace("apiKey: sk-demo-not-a-real-key", 'apiKey: "sk-one\\nsk-two"'))
        line = run.wait_for(r"the credential from Secret data \S+ holds characters not allowed", since=since)
        assert "ERROR" in line.string
        run.wait_for(r"the previous config keeps serving", since=since, timeout=5)
        after = "\n".join(run.lines[since:])
        assert not re.search(r"config \w+ is serving", after), after
        assert "sk-one" not in run.output()
        r = run.chat("gpt-4o-mini")
        assert r.status == 200, r.body
        assert r.json()["echo"]["headers"]["authorization"] == before
        assert [f.read_text() for f in (run.workdir / "auth").iterdir()] == ["sk-demo-not-a-real-key"]

        since = run.mark()
        secret.write_text(good.replace("sk-demo-not-a-real-key", "sk-fixed-0123456789"))
        run.wait_for(r"config \w+ is serving", since=since, timeout=20)
