"""Config changes on a running gateway: hot reload under traffic, corrupt files, credentials, Host
rewriting."""

from __future__ import annotations

import copy
import http.client
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from tests.integration.extproc.gatewayconfig import POOL, base_config
from tests.integration.extproc.harness import Gateway, write_atomically

pytestmark = [pytest.mark.envoy, pytest.mark.timeout(180)]


@pytest.fixture
def restore(gateway: Gateway) -> Iterator[None]:
    """Put the base config back after the test."""
    yield
    gateway.apply(base_config(_ports(gateway)))


def _ports(gateway: Gateway) -> dict[str, int]:
    return {n: u.port for n, u in gateway.upstreams.items()}


def _gpt_a_to(gateway: Gateway, backend: str, *, uuid: str) -> dict[str, Any]:
    cfg = base_config(_ports(gateway))
    cfg["uuid"] = uuid
    cfg["rules"][0]["backendRefs"] = [{"name": backend}]
    return cfg


def test_hot_reload_under_traffic_fails_no_request(gateway: Gateway, restore: None) -> None:
    stop = threading.Event()
    results: list[tuple[int, str]] = []
    lock = threading.Lock()

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=30)
        body = orjson.dumps({"model": "gpt-a"})
        while not stop.is_set():
            conn.request(
                "POST", "/v1/chat/completions", body=body, headers={"content-type": "application/json"}
            )
            resp = conn.getresponse()
            resp.read()
            with lock:
                results.append((resp.status, resp.getheader("x-upstream-name") or ""))
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for i in range(6):
            time.sleep(0.3)
            gateway.apply(
                _gpt_a_to(gateway, "openai-b.default" if i % 2 == 0 else "openai-a.default", uuid=f"r{i}")
            )
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    statuses = Counter(s for s, _ in results)
    assert statuses == {200: len(results)}, statuses
    assert len(results) > 50
    assert {u for _, u in results} == {"a", "b"}  # both configs served traffic
    # the last config (i=5 -> a) is the one serving now
    assert gateway.chat("gpt-a").headers["x-upstream-name"] == "a"


@pytest.mark.parametrize(
    "content",
    [
        b"{{{ this is not yaml",
        b"- just\n- a list\n",
        b"version: v9\nrules: []\n",
        b"rules:\n- route: default/x\n  backendRefs: [{name: missing.default}]\n",
        b"rules: []\nsurprise: field\n",
    ],
    ids=["not-yaml", "not-a-mapping", "unknown-version", "dangling-backend", "unknown-field"],
)
def test_a_bad_config_file_keeps_the_old_config_serving(
    gateway: Gateway, restore: None, content: bytes
) -> None:
    good = gateway.apply(base_config(_ports(gateway)))
    errors_before = gateway.extproc.metric("aigw_extproc_config_reloads_total", result="error")
    write_atomically(gateway.config_path, content)
    gateway.extproc.wait_for_metric(
        "aigw_extproc_config_reloads_total",
        errors_before + 1,
        within=10,
        what="the bad config was not even attempted",
        result="error",
    )
    assert gateway.extproc.metric("aigw_extproc_config_last_load_failed") == 1
    assert gateway.extproc.metric("aigw_extproc_config_info", hash=good) == 1
    r = gateway.chat("gpt-a")
    assert r.status == 200
    assert r.headers["x-upstream-name"] == "a"
    assert "rejected" in gateway.extproc.log_path.read_text()


def test_api_keys_reach_backends_and_pool_members_and_rotate(
    gateway: Gateway, restore: None, tmp_path: Path
) -> None:
    key_file = tmp_path / "apiKey"
    key_file.write_text("sk-first-key\n")
    cfg = base_config(_ports(gateway))
    cfg["backends"][0]["auth"] = {"apiKey": {"filename": str(key_file)}}
    cfg["pools"][0]["members"][0]["auth"] = {"azure": {"filename": str(key_file)}}
    gateway.apply(cfg)
    for model in ("gpt-a", "mistral"):
        seen = gateway.chat(model).json()["echo"]["headers"]
        assert seen["authorization"] == f"<{len('Bearer sk-first-key')} chars>", model
    # backend b has no auth: a client's Authorization passes through untouched, no key of ours is added
    assert (
        gateway.chat("gpt-team", headers={"x-team": "blue"}).headers["x-echo-authorization-present"]
        == "false"
    )
    # rotating the secret file is picked up without a config change
    write_atomically(key_file, b"sk-second-key-longer")
    deadline = time.monotonic() + 10
    while gateway.chat("gpt-a").json()["echo"]["headers"]["authorization"] != "<27 chars>":
        assert time.monotonic() < deadline, "the rotated key was not picked up"
        time.sleep(0.1)
    assert "sk-first-key" not in gateway.extproc.log_path.read_text()
    assert "sk-second" not in gateway.extproc.log_path.read_text()


def test_a_missing_credential_file_rejects_the_config(
    gateway: Gateway, restore: None, tmp_path: Path
) -> None:
    good = gateway.apply(base_config(_ports(gateway)))
    cfg = base_config(_ports(gateway))
    cfg["backends"][0]["auth"] = {"apiKey": {"filename": str(tmp_path / "absent")}}
    errors_before = gateway.extproc.metric("aigw_extproc_config_reloads_total", result="error")
    write_atomically(gateway.config_path, orjson.dumps(cfg))
    deadline = time.monotonic() + 10
    while gateway.extproc.metric("aigw_extproc_config_reloads_total", result="error") == errors_before:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert gateway.extproc.metric("aigw_extproc_config_info", hash=good) == 1


def test_endpoint_from_a_hostname_sets_host(gateway: Gateway, restore: None) -> None:
    cfg = copy.deepcopy(base_config(_ports(gateway)))
    pool = next(p for p in cfg["pools"] if p["name"] == POOL)
    for ep in pool["members"][0]["endpoints"]:
        ep["hostname"] = "llm.pool.internal"
    gateway.apply(cfg)
    r = gateway.chat("mistral")
    assert r.status == 200
    assert r.headers["x-echo-host"] == "llm.pool.internal"
    # endpoints without a hostname keep the client's Host
    gateway.apply(base_config(_ports(gateway)))
    assert gateway.chat("mistral").headers["x-echo-host"] != "llm.pool.internal"


def test_a_pool_without_endpoints_answers_503_json(gateway: Gateway, restore: None) -> None:
    cfg = base_config(_ports(gateway))
    cfg["pools"][0]["members"][0]["endpoints"] = []
    gateway.apply(cfg)
    r = gateway.chat("mistral")
    assert r.status == 503
    assert set(r.json()["error"]) == {"message", "type", "code"}


def test_an_azure_backend_gets_the_deployment_path_and_its_token(
    gateway: Gateway, restore: None, tmp_path: Path
) -> None:
    token = tmp_path / "azureAccessToken"
    token.write_text("azure-token")
    cfg = base_config(_ports(gateway))
    cfg["backends"].append(
        {
            "name": "azure.default",
            "schema": {"name": "AzureOpenAI", "version": "2024-10-21"},
            "auth": {"azure": {"filename": str(token)}},
        }
    )
    cfg["rules"][0]["backendRefs"] = [{"name": "azure.default"}]
    gateway.apply(cfg)
    r = gateway.chat("gpt-a")
    assert r.status == 200, r.body
    assert r.headers["x-echo-path"] == "/openai/deployments/gpt-a/chat/completions?api-version=2024-10-21"
    assert r.json()["echo"]["headers"]["authorization"] == f"<{len('Bearer azure-token')} chars>"


def _health(gateway: Gateway) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"{gateway.extproc.metrics_url}/health", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_a_non_utf8_credential_file_is_a_config_error_and_its_fix_loads(
    gateway: Gateway, restore: None, tmp_path: Path
) -> None:
    """The watcher used to die on UnicodeDecodeError: /health still said ok and nothing loaded again."""
    good = gateway.apply(base_config(_ports(gateway)))
    key_file = tmp_path / "apiKey"
    key_file.write_bytes(b"sk-\xff\xfe-latin1-\xe9")
    cfg = base_config(_ports(gateway))
    cfg["uuid"] = "non-utf8"
    cfg["backends"][0]["auth"] = {"apiKey": {"filename": str(key_file)}}
    errors_before = gateway.extproc.metric("aigw_extproc_config_reloads_total", result="error")
    write_atomically(gateway.config_path, yaml.safe_dump(cfg, sort_keys=False).encode())
    gateway.extproc.wait_for_metric(
        "aigw_extproc_config_reloads_total", errors_before + 1, within=10, result="error"
    )
    assert gateway.extproc.metric("aigw_extproc_config_last_load_failed") == 1
    assert gateway.extproc.metric("aigw_extproc_config_info", hash=good) == 1
    status, text = _health(gateway)
    assert status == 200, text  # still serving the last good config: a restart would not do better
    assert f"serving hash={good}" in text and "not UTF-8" in text and str(key_file) in text
    r = gateway.chat("gpt-a")
    assert (r.status, r.headers["x-upstream-name"]) == (200, "a")
    assert "not UTF-8" in gateway.extproc.log_path.read_text()

    # fixing only the credential file (the config file is unchanged) is a change, and it loads
    write_atomically(key_file, b"sk-fixed-key")
    gateway.extproc.wait_for_metric(
        "aigw_extproc_config_last_load_failed", 0, within=10, what="the fixed credential file was not loaded"
    )
    assert (
        gateway.chat("gpt-a").json()["echo"]["headers"]["authorization"]
        == f"<{len('Bearer sk-fixed-key')} chars>"
    )
    status, text = _health(gateway)
    assert status == 200 and "failed" not in text, text
