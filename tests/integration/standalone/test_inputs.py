"""Reading input files and the in-memory store (pure, no processes): every problem names its file.

Also checks that the Envoy configuration ``aigw run`` generates for every backend shape (IP, hostname, TLS,
no endpoints) is accepted by the real Envoy binary (``envoy --mode validate``).
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from aigw.standalone import envoyconfig
from aigw.standalone.envoyconfig import (
    Address,
    BackendCluster,
    ExtProcSettings,
    GatewayPorts,
    HeaderRoute,
    UpstreamTLS,
)
from aigw.standalone.inputs import fingerprint, load_objects
from aigw.standalone.store import build_store
from controller.extensionserver.options import ExtensionServerOptions
from controller.translate.names import ObjKey
from tests.realparts.envoy import validate_envoy_config

_BACKEND = """\
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata: {name: b}
spec:
  endpoints: [{ip: {address: 127.0.0.1, port: 8000}}]
"""


def test_duplicates_missing_names_and_lists_are_reported_with_their_file(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(_BACKEND)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.yml").write_text(
        "apiVersion: v1\nkind: List\nitems:\n"
        "- apiVersion: gateway.envoyproxy.io/v1alpha1\n  kind: Backend\n  metadata: {name: b}\n  spec: {}\n"
        "- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: c}\n"
        "---\nkind: Secret\nmetadata: {name: s}\n"
        "---\napiVersion: v1\nkind: Secret\nmetadata: {}\n"
    )
    (tmp_path / "notes.txt").write_text("not yaml: [")
    result = load_objects([tmp_path])
    assert [o.path.name for o in result.objects] == ["a.yaml"]
    errors = [str(e) for e in result.errors]
    b = tmp_path / "sub" / "b.yml"
    assert errors == [
        f"{b} (document 1): Backend default/b is also defined in {tmp_path / 'a.yaml'} (document 1)",
        f"{b} (document 2): missing apiVersion",
        f"{b} (document 3): Secret: missing metadata.name",
    ]
    assert result.ignored == [f"{b} (document 1): ConfigMap v1 is not used"]


def test_fingerprint_sees_new_changed_and_deleted_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(_BACKEND)
    first = fingerprint([tmp_path])
    (tmp_path / "b.yaml").write_text(_BACKEND.replace("name: b", "name: c"))
    second = fingerprint([tmp_path])
    (tmp_path / "a.yaml").write_text(_BACKEND + "\n")
    third = fingerprint([tmp_path])
    (tmp_path / "b.yaml").unlink()
    fourth = fingerprint([tmp_path])
    assert len({repr(x) for x in (first, second, third, fourth)}) == 4
    assert fingerprint([tmp_path / "gone"]) == f"{tmp_path / 'gone'}: no such file or directory"


def test_store_validates_models_and_folds_secret_string_data(tmp_path: Path) -> None:
    (tmp_path / "in.yaml").write_text(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: ns}\n"
        "data: {a: " + base64.b64encode(b"one").decode() + "}\nstringData: {b: two}\n"
        "---\napiVersion: v1\nkind: Secret\nmetadata: {name: bad}\ndata: {a: '%%%'}\n"
        "---\napiVersion: aigateway.envoyproxy.io/v1alpha1\nkind: AIServiceBackend\nmetadata: {name: x}\n"
        "spec: {schema: {name: OpenAI}}\n"
    )
    result = load_objects([tmp_path])
    store, errors = build_store(result.objects)
    assert store.secret_data() == {
        ObjKey("ns", "s"): {"a": base64.b64encode(b"one").decode(), "b": base64.b64encode(b"two").decode()}
    }
    messages = [str(e) for e in errors]
    assert messages[0] == f"{tmp_path / 'in.yaml'} (document 2): Secret: data.a is not valid base64"
    assert messages[1].startswith(
        f"{tmp_path / 'in.yaml'} (document 3): AIServiceBackend default/x is invalid"
    )
    assert "spec.backendRef" in messages[1]
    # Without a creationTimestamp, objects are ordered as read: "the oldest wins" = "the first in the files".
    meta = store.of_kind("Secret")[ObjKey("ns", "s")].body["metadata"]
    assert meta["creationTimestamp"] == "2000-01-01T00:00:00Z"


def _static_equivalent(
    tmp_path: Path, clusters: list[BackendCluster], routes: list[HeaderRoute]
) -> dict[str, Any]:
    """The bootstrap with the file-xDS resources inlined: ``--mode validate`` does not read xDS files."""
    boot = envoyconfig.bootstrap(
        ports=GatewayPorts(
            listener=Address(host="127.0.0.1", port=1),
            admin=Address(host="127.0.0.1", port=2),
            extproc=Address(host="127.0.0.1", port=3),
        ),
        xds_dir=tmp_path,
        original_dst_cluster=envoyconfig.original_destination_cluster(options=ExtensionServerOptions()),
        extproc=ExtProcSettings(),
    )
    boot.pop("dynamic_resources")
    for c in envoyconfig.cds_document(clusters)["resources"]:
        boot["static_resources"]["clusters"].append({k: v for k, v in c.items() if k != "@type"})
    route_config = envoyconfig.rds_document(routes, pool_timeout_seconds=30)["resources"][0]
    hcm = boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    hcm.pop("rds")
    hcm["route_config"] = {k: v for k, v in route_config.items() if k != "@type"}
    return boot


def test_every_backend_shape_is_valid_envoy_config(tmp_path: Path) -> None:
    clusters = [
        BackendCluster(name="backend/ns/ip", endpoints=(Address(host="127.0.0.1", port=8000),)),
        BackendCluster(name="backend/ns/v6", endpoints=(Address(host="::1", port=8000),)),
        BackendCluster(
            name="backend/ns/openai",
            endpoints=(Address(host="api.openai.com", port=443),),
            tls=UpstreamTLS(sni="api.openai.com"),
        ),
        BackendCluster(
            name="backend/ns/self-signed",
            endpoints=(Address(host="model.internal", port=8443),),
            tls=UpstreamTLS(sni="model.internal", verify=False),
        ),
        BackendCluster(name="service/ns/svc", endpoints=()),
    ]
    routes = [
        HeaderRoute(value="ip.ns", cluster="backend/ns/ip", timeout_seconds=60),
        HeaderRoute(
            value="openai.ns", cluster="backend/ns/openai", timeout_seconds=0.5, auto_host_rewrite=False
        ),
        HeaderRoute(value="svc.ns", cluster="service/ns/svc", timeout_seconds=3600),
    ]
    validate_envoy_config(_static_equivalent(tmp_path, clusters, routes), workdir=tmp_path)
