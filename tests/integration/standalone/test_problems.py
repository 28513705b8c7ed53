"""How ``aigw run`` reports problems: at start-up, in conditions, and when a child process dies.

What each test measures:
- a broken input at start-up: exit code 1, the file path and the reason printed, no child process started;
- a port already in use: exit code 1 and the flag to change it;
- references that do not resolve are printed as the controller's conditions, naming the object's file, while
  everything else keeps serving; a Service backend (which needs a cluster) answers 503 and says why;
- a crashed child (the ext_proc, a demo upstream) is restarted and requests succeed again.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.standalone.harness import (
    Prepared,
    aigw_run,
    alive,
    burst_upstream_names,
    cmdline,
    free_ports_args,
    run_to_exit,
    upstream_names,
)

pytestmark = pytest.mark.envoy


def test_a_broken_file_at_start_exits_1_naming_the_file(examples: Prepared) -> None:
    bad = examples.directory / "pool.yaml"
    bad.write_text(bad.read_text().replace("targetPortNumber:", "targetPortNumbr:"))
    result = run_to_exit([examples.directory], extra_args=free_ports_args())
    assert result.returncode == 1, result.stdout
    assert f"{bad} (document 1): InferencePool default/demo-pool is invalid" in result.stdout, result.stdout
    assert "targetPortNumbr" in result.stdout
    assert "aigw is serving" not in result.stdout


def test_a_missing_input_path_exits_1(tmp_path: Path) -> None:
    result = run_to_exit([tmp_path / "nope.yaml"], extra_args=free_ports_args())
    assert result.returncode == 1
    assert f"{tmp_path / 'nope.yaml'}: no such file or directory" in result.stdout


def test_a_port_in_use_exits_1_naming_the_flag(examples: Prepared) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = free_ports_args()
        args[args.index("--admin-port") + 1] = str(port)
        result = run_to_exit([examples.directory], extra_args=args)
    assert result.returncode == 1
    assert (
        f"127.0.0.1:{port} (Envoy's admin) is already in use: choose another with --admin-port"
        in result.stdout
    )


def test_unresolved_references_are_printed_as_conditions_and_the_rest_serves(
    examples: Prepared, tmp_path: Path
) -> None:
    route = examples.directory / "gateway.yaml"
    route.write_text(
        route.read_text()
        + """\
  - matches:
    - headers:
      - name: x-ai-eg-model
        value: ghost-model
    backendRefs:
    - name: ghost
  - matches:
    - headers:
      - name: x-ai-eg-model
        value: in-cluster-model
    backendRefs:
    - name: in-cluster
"""
    )
    (examples.directory / "service.yaml").write_text(
        """\
apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: AIServiceBackend
metadata:
  name: in-cluster
spec:
  schema:
    name: OpenAI
  backendRef:
    name: my-model-server
    port: 8000
---
apiVersion: v1
kind: Service
metadata:
  name: my-model-server
spec:
  ports:
  - port: 8000
"""
    )
    with aigw_run([examples.directory], workdir=tmp_path / "work") as run:
        line = run.wait_for(r"WARNING .*AIGatewayRoute default/demo \[.*gateway\.yaml \(document 2\)\]: ")
        assert "ResolvedRefs=False BackendNotFound" in line.string
        assert "ghost" in line.string
        run.wait_for(
            r"WARNING .*Service default/my-model-server: aigw run has no cluster to find Services in"
        )
        # Everything that resolves keeps working.
        assert set(upstream_names(run, "demo-llm", n=6)) <= {"demo-llm-1", "demo-llm-2", "demo-llm-3"}
        assert run.chat("gpt-4o-mini").status == 200
        service = run.chat("in-cluster-model")
        assert service.status == 503, service.body


def _child(run_descendants: dict[int, int], needle: str) -> int:
    pids = [p for p in run_descendants if needle in cmdline(p)]
    assert len(pids) == 1, {p: cmdline(p) for p in run_descendants}
    return pids[0]


def test_a_crashed_child_is_restarted(examples: Prepared, tmp_path: Path) -> None:
    with aigw_run([examples.directory], workdir=tmp_path / "work") as run:
        extproc = _child(run.descendants(), "extproc.main")
        upstream = _child(run.descendants(), "--name demo-llm-2")
        since = run.mark()
        os.kill(extproc, signal.SIGKILL)
        os.kill(upstream, signal.SIGKILL)
        run.wait_for(r"extproc exited with -9; restarting it", since=since, timeout=10)
        run.wait_for(r"upstream\.demo-llm-2 exited with -9; restarting it", since=since, timeout=10)
        deadline = time.monotonic() + 30
        names: set[str] = set()
        while time.monotonic() < deadline and names != {"demo-llm-1", "demo-llm-2", "demo-llm-3"}:
            with contextlib.suppress(AssertionError):  # the restarted children may need a moment
                names.update(burst_upstream_names(run, "demo-llm", n=12))
        assert names == {"demo-llm-1", "demo-llm-2", "demo-llm-3"}, run.output()[-3000:]
        assert not alive(extproc)
        assert _child(run.descendants(), "extproc.main") != extproc


def test_the_aigw_console_script_runs_the_cli() -> None:
    script = Path(sys.executable).parent / "aigw"
    assert script.is_file(), (
        f"{script} is missing: `make setup` installs the project with its console scripts"
    )
    result = subprocess.run(
        [str(script), "run", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    for flag in ("--port", "--admin-port", "--extproc-port", "--workdir", "--dns-server", "--gateway"):
        assert flag in result.stdout


def test_check_builds_without_starting_anything(examples: Prepared) -> None:
    ok = run_to_exit([examples.directory], extra_args=["--check"])
    assert ok.returncode == 0, ok.stdout
    assert "OK: Gateway default/aigw, 2 rules, models: demo-llm, gpt-4o-mini" in ok.stdout
    assert "demo upstream" not in ok.stdout
    route = examples.directory / "gateway.yaml"
    route.write_text(route.read_text().replace("name: openai-compatible", "name: typo"))
    bad = run_to_exit([examples.directory], extra_args=["--check"])
    assert bad.returncode == 1, bad.stdout
    assert "ResolvedRefs=False BackendNotFound: AIServiceBackend default/typo not found" in bad.stdout


def test_check_warns_about_a_second_route_claiming_a_served_model(examples: Prepared) -> None:
    # "a-claim.yaml" is read before gateway.yaml, so its route is the older one and takes gpt-4o-mini
    (examples.directory / "a-claim.yaml").write_text(
        "apiVersion: aigateway.envoyproxy.io/v1alpha1\nkind: AIGatewayRoute\n"
        "metadata: {name: claim, namespace: default}\n"
        "spec:\n  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: aigw}]\n"
        "  schema: {name: OpenAI}\n"
        "  rules:\n  - matches: [{headers: [{name: x-ai-eg-model, value: gpt-4o-mini}]}]\n"
        "    backendRefs: [{kind: InferencePool, name: demo-pool}]\n"
    )
    out = run_to_exit([examples.directory], extra_args=["--check"])
    assert out.returncode == 0, out.stdout
    assert (
        "AIGatewayRoute default/demo: the match x-ai-eg-model=gpt-4o-mini is never used: an earlier rule of "
        "AIGatewayRoute default/claim" in out.stdout
    )
    assert "models: gpt-4o-mini, demo-llm\n" in out.stdout


def test_check_refuses_a_key_that_cannot_go_into_a_header(examples: Prepared) -> None:
    secret = examples.directory / "openai.yaml"
    secret.write_text(secret.read_text().replace("apiKey: sk-demo-not-a-real-key", 'apiKey: "sk-a\\x01b"'))
    bad = run_to_exit([examples.directory], extra_args=["--check"])
    assert bad.returncode == 1, bad.stdout
    assert "default.openai-api-key.apiKey holds characters not allowed in an HTTP header" in bad.stdout
    assert "sk-a" not in bad.stdout


def test_several_gateways_need_gateway_flag(examples: Prepared) -> None:
    (examples.directory / "second.yaml").write_text(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n"
        "metadata: {name: other, namespace: default}\nspec: {gatewayClassName: x, listeners: []}\n"
    )
    ambiguous = run_to_exit([examples.directory], extra_args=["--check"])
    assert ambiguous.returncode == 1
    assert "cannot tell which Gateway to serve (found: default/aigw, default/other)" in ambiguous.stdout
    chosen = run_to_exit([examples.directory], extra_args=["--check", "--gateway", "default/aigw"])
    assert chosen.returncode == 0, chosen.stdout
    other = run_to_exit([examples.directory], extra_args=["--check", "--gateway", "default/other"])
    assert "OK: Gateway default/other, 0 rules, models: none" in other.stdout


def test_a_pool_without_endpoints_is_served_by_its_fallback(examples: Prepared, tmp_path: Path) -> None:
    # aigw run builds with the controller's builders: a pool whose selector matches nothing is reported, and
    # its rule's fallback (the example's OpenAI-compatible backend, with its own model name) serves instead.
    route = examples.directory / "gateway.yaml"
    route.write_text(
        route.read_text()
        + """\
  - matches:
    - headers:
      - name: x-ai-eg-model
        value: spill-model
    backendRefs:
    - kind: InferencePool
      name: empty-pool
      fallback:
        name: openai-compatible
        modelNameOverride: gpt-4o-mini
"""
    )
    (examples.directory / "empty-pool.yaml").write_text(
        """\
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferencePool
metadata:
  name: empty-pool
spec:
  targetPortNumber: 18081
  selector:
    app: nobody
  extensionRef:
    name: envoy-ai-gateway
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModel
metadata:
  name: spill-model
spec:
  modelName: spill-model
  poolRef:
    name: empty-pool
"""
    )
    with aigw_run([examples.directory], workdir=tmp_path / "work") as run:
        run.wait_for(r"WARNING .*InferencePool default/empty-pool .*BackendNotFound")
        for _ in range(3):
            r = run.chat("spill-model")
            assert r.status == 200, r.body
            assert r.headers["x-upstream-name"] == "openai-compatible"
            assert r.headers["x-echo-model"] == "gpt-4o-mini"
        # the pool with endpoints is untouched by it
        assert set(upstream_names(run, "demo-llm", n=6)) <= {"demo-llm-1", "demo-llm-2", "demo-llm-3"}
