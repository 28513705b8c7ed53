"""The deploy path (config/, the Dockerfile, hack/kind-up.sh, Envoy Gateway's Helm values, ``make deploy``)
agrees with the code, checked without a cluster or a container runtime: the YAML files are parsed and their
cross-references compared with the controller's own argument parser, constants and wiring.

- The controller Deployment's arguments are accepted by ``aigw-controller``'s parser; its ports and probes are
  the ones those arguments bind; the Service exposes the extension server where Envoy Gateway's
  ``extensionManager`` (the chart's files/envoy-gateway-values.yaml) points.
- The ``extensionManager`` and ``extensionApis`` of Envoy Gateway's Helm values
  (charts/ai-gateway-py/files/envoy-gateway-values.yaml, used as is by the README and with kind-up.sh's
  ``--set`` of our Service's name and port) are the ones the e2e harness runs Envoy Gateway with
  (tests/realparts/envoygateway.py), and use only EnvoyGateway v1.9.0 field names: Envoy Gateway ignores
  unknown fields, so a misspelt key would silently drop a setting.
- The ClusterRole grants exactly what the controller does: every kind it informs is readable, every kind it
  applies can be created and patched, the pruned kinds deleted, the status of the kinds it reports on patched,
  Events created and patched, the credential rotation's Secrets read, written and deleted; nothing else. The
  leader election Role reaches only the controller's Lease.
- The ServiceAccount, bindings, namespace and image names refer to each other; ``make deploy`` applies the
  CRDs of every kind of ours the controller needs; the Dockerfile copies every package the console scripts
  import; the ext_proc container the controller writes runs ``aigw-extproc`` with arguments it accepts.
"""

from __future__ import annotations

import argparse
import fnmatch
import functools
import re
import tomllib
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from api.inference import GROUP as INFERENCE_GROUP
from api.v1alpha1 import GROUP as AIGW_GROUP
from controller.dns import DnsResolver
from controller.gateway import kinds
from controller.gateway.reconciler import PRUNED_KINDS, GatewayReconciler
from controller.gateway.setup import ControllerSettings, setup_controllers
from controller.main import LEADER_ELECTION_ID, parse_args
from controller.runtime import Informer, Manager, Resource
from controller.runtime.resources import EVENTS, LEASES, SECRETS
from controller.translate import BuildOptions
from controller.translate.names import EXTPROC_GRPC_PORT, EXTPROC_METRICS_PORT
from controller.translate.resources import extproc_args
from extproc.main import parse_args as extproc_parse_args
from tests.realparts.envoygateway import envoy_gateway_config

ROOT = Path(__file__).resolve().parents[3]
CONFIG = ROOT / "config"
Doc = dict[str, Any]

# --- loading


def kustomize(directory: Path) -> list[Doc]:
    """The documents a kustomization lists (resources only: the files here use no other transformer but
    ``namespace``, which ``test_one_namespace`` checks is already applied in every file)."""
    kust = yaml.safe_load((directory / "kustomization.yaml").read_text())
    assert set(kust) <= {"namespace", "resources"}, (
        f"{directory}: kustomize features this test does not model"
    )
    docs: list[Doc] = []
    for entry in kust["resources"]:
        path = (directory / entry).resolve()
        if path.is_dir():
            docs += kustomize(path)
        else:
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


DOCS = kustomize(CONFIG / "default")
NAMESPACE: str = yaml.safe_load((CONFIG / "default" / "kustomization.yaml").read_text())["namespace"]


def one(kind: str, name: str | None = None) -> Doc:
    found = [d for d in DOCS if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''} in config/default, found {len(found)}"
    return found[0]


DEPLOYMENT = one("Deployment")
SERVICE = one("Service")
POD = DEPLOYMENT["spec"]["template"]["spec"]
CONTAINER = POD["containers"][0]

KIND_UP = (ROOT / "hack" / "kind-up.sh").read_text()
MAKEFILE = (ROOT / "Makefile").read_text()


def kind_up_default(var: str) -> str:
    """``VAR="${VAR:-default}"`` in hack/kind-up.sh: the default."""
    m = re.search(rf'^{var}="\$\{{{var}:-([^}}]*)\}}"$', KIND_UP, re.MULTILINE)
    assert m, f"hack/kind-up.sh sets no default for {var}"
    return m.group(1)


@functools.cache
def controller_args() -> argparse.Namespace:
    """The Deployment's arguments, parsed by ``aigw-controller``'s own parser."""
    try:
        return parse_args(CONTAINER.get("args", []))
    except SystemExit:  # argparse printed the reason to stderr
        raise AssertionError(
            f"aigw-controller rejects the Deployment's args {CONTAINER.get('args')}"
        ) from None


def port_of(ports: list[Doc], name: str, key: str) -> int:
    found = [p[key] for p in ports if p.get("name") == name]
    assert len(found) == 1, f"no single port named {name!r} in {ports}"
    return int(found[0])


def bound_port(address: str) -> int:
    return int(address.rpartition(":")[2])


# --- the kustomization and the namespace


def test_every_manifest_is_in_the_kustomization() -> None:
    for sub in ("rbac", "manager"):
        listed = set(yaml.safe_load((CONFIG / sub / "kustomization.yaml").read_text())["resources"])
        files = {p.name for p in (CONFIG / sub).glob("*.yaml")} - {"kustomization.yaml"}
        assert files == listed, (
            f"config/{sub}: files {sorted(files)} but kustomization lists {sorted(listed)}"
        )


def test_one_namespace() -> None:
    assert one("Namespace")["metadata"]["name"] == NAMESPACE
    for d in DOCS:
        if d["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
            assert d["metadata"].get("namespace") == NAMESPACE, f"{d['kind']} {d['metadata']['name']}"
        for s in d.get("subjects", []):
            assert s["namespace"] == NAMESPACE
    assert kind_up_default("AIGW_NAMESPACE") == NAMESPACE
    # The leader election Lease lives in the pod's namespace (POD_NAMESPACE), where its Role is.
    env = {e["name"]: e for e in CONTAINER.get("env", [])}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}


# --- the controller Deployment


def test_the_container_runs_the_controller_with_arguments_it_accepts() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert CONTAINER["command"] == ["aigw-controller"]
    assert scripts["aigw-controller"] == "controller.main:main"
    args = controller_args()
    assert args.leader_elect, "replicas would each reconcile without --leader-elect"
    assert args.kubeconfig is None, "in a cluster the controller uses its ServiceAccount"
    assert args.extproc_address is None, "in a cluster the controller runs the ext_proc Deployments"


def test_ports_and_probes_are_the_ones_the_controller_binds() -> None:
    args = controller_args()
    ports = CONTAINER["ports"]
    assert port_of(ports, "extension", "containerPort") == bound_port(args.extension_server_address)
    assert port_of(ports, "health", "containerPort") == bound_port(args.health_probe_bind_address)
    assert port_of(ports, "metrics", "containerPort") == bound_port(args.metrics_bind_address)
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        assert CONTAINER[probe]["httpGet"] == {"path": path, "port": "health"}
    # The Service selects the pods and sends its extension port to the extension server.
    labels = DEPLOYMENT["spec"]["template"]["metadata"]["labels"]
    assert SERVICE["spec"]["selector"].items() <= labels.items()
    assert DEPLOYMENT["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert [p["targetPort"] for p in SERVICE["spec"]["ports"] if p["name"] == "extension"] == ["extension"]
    extension_port = port_of(SERVICE["spec"]["ports"], "extension", "port")
    assert extension_port == int(kind_up_default("AIGW_EXTSERVER_PORT"))
    assert SERVICE["metadata"]["name"] == DEPLOYMENT["metadata"]["name"] == kind_up_default("AIGW_SERVICE")


def test_one_image_built_loaded_and_run() -> None:
    img = kind_up_default("IMG")
    assert CONTAINER["image"] == controller_args().extproc_image == img
    m = re.search(r"^IMG \?= (\S+)$", MAKEFILE, re.MULTILINE)
    assert m and m.group(1) == img
    assert f"sed 's|{img}|$(IMG)|g'" in MAKEFILE, "make deploy no longer substitutes IMG into the manifests"
    # The image runs as a numeric non-root user, as runAsNonRoot requires.
    assert re.search(r"^USER \d+:\d+$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert POD["securityContext"]["runAsNonRoot"] is True


def test_the_extproc_container_the_controller_writes_runs_with_arguments_it_accepts() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["aigw-extproc"] == "extproc.main:main"
    argv = extproc_args(BuildOptions())
    try:
        args = extproc_parse_args(argv)
    except SystemExit:
        raise AssertionError(f"aigw-extproc rejects the args the controller gives it: {argv}") from None
    assert bound_port(args.listen) == EXTPROC_GRPC_PORT
    assert bound_port(args.metrics_listen) == EXTPROC_METRICS_PORT


def test_service_account_and_bindings_refer_to_each_other() -> None:
    sa = one("ServiceAccount")["metadata"]["name"]
    assert POD["serviceAccountName"] == sa
    for binding_kind, role_kind in (("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")):
        binding = one(binding_kind)
        ref = binding["roleRef"]
        assert ref["apiGroup"] == "rbac.authorization.k8s.io" and ref["kind"] == role_kind
        role = one(role_kind, ref["name"])
        assert role["metadata"].get("namespace") == binding["metadata"].get("namespace")
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": NAMESPACE}]


# --- RBAC: what the controller does, and no more


class RecordingManager(Manager):
    """A manager that records the resources informers are asked for (no cluster: nothing is started)."""

    def __init__(self) -> None:
        super().__init__(api_client=None, health_port=None)
        self.informed: set[Resource] = set()

    def informer(self, resource: Resource, **kwargs: Any) -> Informer:
        self.informed.add(resource)
        return super().informer(resource, **kwargs)


Grants = dict[tuple[str, str, str | None], set[str]]


def grants(role: Doc) -> Grants:
    """(apiGroup, resource, resourceName or None) -> verbs; wildcards and non-resource URLs are refused."""
    out: Grants = defaultdict(set)
    for rule in role["rules"]:
        assert "nonResourceURLs" not in rule
        for field in ("apiGroups", "resources", "verbs", "resourceNames"):
            assert "*" not in rule.get(field, []), f"wildcard {field} in {role['metadata']['name']}"
        for g in rule["apiGroups"]:
            for r in rule["resources"]:
                for name in rule.get("resourceNames") or [None]:
                    out[(g, r, name)] |= set(rule["verbs"])
    return dict(out)


@pytest.fixture
async def wired() -> tuple[RecordingManager, GatewayReconciler]:
    mgr = RecordingManager()
    reconciler = setup_controllers(
        mgr,
        settings=ControllerSettings(
            options=BuildOptions(enable_inference_extension=True),
            inference_v1=True,
            inference_objectives=True,
        ),
        resolver=DnsResolver(registry=mgr.metrics.registry),
    )
    return mgr, reconciler


def test_the_cluster_role_is_exactly_what_the_controller_does(
    wired: tuple[RecordingManager, GatewayReconciler],
) -> None:
    mgr, reconciler = wired
    want: Grants = defaultdict(set)
    for r in mgr.informed:  # informers list and watch; a status write that conflicts re-reads with get
        want[(r.group, r.plural, None)] |= {"get", "list", "watch"}
    for kind in reconciler.owned:  # server-side apply: PATCH, which also needs create for a new object
        r = kinds.BY_KIND[kind]
        want[(r.group, r.plural, None)] |= {"create", "patch"}
    for kind in (*PRUNED_KINDS, "HTTPRoute"):  # reconciler.prune
        r = kinds.BY_KIND[kind]
        want[(r.group, r.plural, None)] |= {"delete"}
    for kind in reconciler.status_stores:  # StatusWriter: merge patch on the status subresource
        r = kinds.BY_KIND[kind]
        want[(r.group, f"{r.plural}/status", None)] |= {"patch"}
    want[(EVENTS.group, EVENTS.plural, None)] |= {"create", "patch"}  # EventRecorder: post, then bump count
    # controller/rotation/reconciler.py: reads, applies (create + patch) and deletes ai-eg-bsp-<policy>
    want[(SECRETS.group, SECRETS.plural, None)] |= {"get", "create", "patch", "delete"}
    assert grants(one("ClusterRole")) == dict(want)


def test_the_informed_kinds_include_the_inference_extension_events_and_ours(
    wired: tuple[RecordingManager, GatewayReconciler],
) -> None:
    mgr, _ = wired
    informed = {(r.group, r.plural) for r in mgr.informed}
    assert {(INFERENCE_GROUP, "inferencepools"), (INFERENCE_GROUP, "inferencemodels")} <= informed
    assert {(AIGW_GROUP, r.plural) for r in kinds.REQUIRED if r.group == AIGW_GROUP} <= informed
    assert ("", "events", None) in grants(one("ClusterRole"))


def test_the_leader_election_role_reaches_only_the_controllers_lease() -> None:
    lease = (LEASES.group, LEASES.plural)
    assert grants(one("Role")) == {
        (*lease, None): {"create"},  # the name is in the body: create cannot be limited by resourceNames
        (*lease, LEADER_ELECTION_ID): {"get", "update"},  # controller/runtime/leaderelection.py: GET, PUT
    }


# --- make deploy: the CRDs


def test_make_deploy_applies_the_crds_of_every_kind_of_ours_the_controller_needs() -> None:
    recipe = MAKEFILE.split("\ndeploy:", 1)[1].split("\n\n", 1)[0]
    lines = [ln.strip() for ln in recipe.splitlines()[1:]]
    assert lines[0] == "kubectl apply --server-side -f config/crd", "the CRDs first, then config/default"
    assert "kubectl kustomize config/default" in lines[1]
    served = set()
    for path in (CONFIG / "crd").glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        spec = crd["spec"]
        assert path.name == f"{spec['group']}_{spec['names']['plural']}.yaml"
        plural = spec["names"]["plural"]
        served |= {(spec["group"], plural, v["name"]) for v in spec["versions"] if v["served"]}
    ours = [r for r in (*kinds.REQUIRED, *kinds.INFERENCE) if r.group in (AIGW_GROUP, INFERENCE_GROUP)]
    assert len(ours) == 5
    assert {(r.group, r.plural, r.version) for r in ours} <= served
    # The others (Gateway API, Envoy Gateway) come with Envoy Gateway's Helm chart, installed first.


# --- the image


def test_the_dockerfile_copies_every_package_and_what_the_build_reads() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    copied = set()
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            copied |= set(line.split()[1:-1])
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages <= copied
    assert {"pyproject.toml", project["project"]["readme"]} <= copied
    for target in project["project"]["scripts"].values():
        assert target.split(".", 1)[0] in packages, target
    # .dockerignore drops nothing of that (a `**/build` line would drop any build/ directory).
    patterns = [
        ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines() if ln.strip() and ln[0] != "#"
    ]
    assert not any(p.startswith("!") for p in patterns), "negations are not modelled here"
    needed = [
        *copied - packages,
        *(str(f.relative_to(ROOT)) for d in packages for f in (ROOT / d).rglob("*.py")),
    ]
    for rel in needed:
        if "__pycache__" not in rel:
            assert not [p for p in patterns if dockerignored(rel, p)], rel


def dockerignored(rel: str, pattern: str) -> bool:
    """Whether .dockerignore ``pattern`` (Go filepath.Match syntax, ``**/`` prefix) excludes ``rel`` or a
    directory above it."""
    parts = rel.split("/")
    anywhere = pattern.startswith("**/")
    pat = pattern.removeprefix("**/").strip("/")
    n = pat.count("/") + 1
    return any(
        fnmatch.fnmatchcase("/".join(parts[i : i + n]), pat) for i in (range(len(parts)) if anywhere else [0])
    )


# --- Envoy Gateway's Helm values in kind

# The EnvoyGateway v1alpha1 JSON field names (Envoy Gateway v1.9.0, api/v1alpha1/envoygateway_types.go and
# backend_types.go) under the parts we set; Envoy Gateway ignores any other key.
EG_FIELDS: dict[str, set[str]] = {
    "envoyGateway": {
        "gateway", "provider", "logging", "admin", "telemetry", "xdsServer", "rateLimit", "extensionManager",
        "extensionManagers", "extensionApis", "gatewayAPI", "runtimeFlags", "envoyProxy",
    },
    "extensionApis": {
        "enableEnvoyPatchPolicy", "enableBackend", "disableLua", "enableLua", "enableSDSSecretRef",
    },
    "extensionManager": {
        "name", "resources", "policyResources", "backendResources", "hooks", "service", "failOpen",
        "maxMessageSize",
    },
    "hooks": {"xdsTranslator"},
    "xdsTranslator": {"pre", "post", "translation"},
    "translation": {"listener", "route", "cluster", "secret"},
    "service": {"hostname", "fqdn", "ip", "unix", "zone", "host", "port", "tls", "retry"},
    "fqdn": {"hostname", "port"},
}  # fmt: skip
EG_HOOKS = {"VirtualHost", "Route", "HTTPListener", "Cluster", "Endpoints", "Translation"}


EG_VALUES = ROOT / "charts" / "ai-gateway-py" / "files" / "envoy-gateway-values.yaml"


def eg_values() -> Doc:
    """The one copy of Envoy Gateway's values (README, kind-up.sh, the chart's install notes)."""
    values: Doc = yaml.safe_load(EG_VALUES.read_text())
    return values


def kind_values() -> Doc:
    """Envoy Gateway's values with the ``--set config...=...`` kind-up.sh adds (its defaults)."""
    values = eg_values()
    sets = re.findall(r'--set "(config\.[\w.]+)=([^"]+)"', KIND_UP)
    assert sets, "kind-up.sh no longer points Envoy Gateway at its AIGW_SERVICE / AIGW_EXTSERVER_PORT"
    for key, raw in sets:
        value = re.sub(r"\$(\w+)", lambda m: kind_up_default(m.group(1)), raw)
        *parents, leaf = key.split(".")
        node = values
        for part in parents:
            assert part in node, f"kind-up.sh sets {key}, absent from Envoy Gateway's values"
            node = node[part]
        assert leaf in node, f"kind-up.sh sets {key}, absent from Envoy Gateway's values"
        node[leaf] = type(node[leaf])(value)
    return values


def check_fields(name: str, obj: Doc) -> None:
    unknown = set(obj) - EG_FIELDS[name]
    assert not unknown, f"{name}: unknown to Envoy Gateway v1.9.0: {unknown}"
    for key, value in obj.items():
        if key in EG_FIELDS and isinstance(value, dict):
            check_fields(key, value)


def test_kind_up_changes_only_where_envoy_gateway_finds_our_service() -> None:
    assert kind_values() == eg_values(), "kind-up.sh's defaults must be the values file's own"


@pytest.mark.parametrize("values", [eg_values, kind_values])
def test_the_envoy_gateway_extension_manager_is_the_e2e_one_and_points_at_our_service(
    tmp_path: Path, values: Any
) -> None:
    eg = values()["config"]["envoyGateway"]
    check_fields("envoyGateway", eg)
    manager = eg["extensionManager"]
    for part in manager["hooks"]["xdsTranslator"]["translation"].values():
        assert set(part) == {"includeAll"}
    assert set(manager["hooks"]["xdsTranslator"]["post"]) <= EG_HOOKS
    host = f"{SERVICE['metadata']['name']}.{NAMESPACE}.svc.cluster.local"
    port = port_of(SERVICE["spec"]["ports"], "extension", "port")
    e2e = envoy_gateway_config(
        workdir=tmp_path, data_home=tmp_path, admin_port=19000, extension_server=(host, port)
    )
    assert manager == e2e["extensionManager"]
    assert eg["extensionApis"] == e2e["extensionApis"]
    assert eg["provider"] == {"type": "Kubernetes"}


def test_kind_up_installs_our_chart_where_envoy_gateway_looks_for_it() -> None:
    """AIGW_INSTALL=helm: the chart's Service gets the name, namespace and port Envoy Gateway is given."""
    chart = '"$HELM" upgrade --install aigw "$REPO/charts/ai-gateway-py"'
    install = KIND_UP.split(chart, 1)[1].split("\nelse", 1)[0]
    for wanted in (
        '--namespace "$AIGW_NAMESPACE"',
        '--set "fullnameOverride=$AIGW_SERVICE"',
        '--set "controller.extensionServerPort=$AIGW_EXTSERVER_PORT"',
        '--set "image.repository=${IMG%:*}" --set "image.tag=${IMG##*:}"',
    ):
        assert wanted in install, f"kind-up.sh's helm install lost {wanted}"
    assert '"$HELM" upgrade --install aigw-crds "$REPO/charts/ai-gateway-py-crds"' in KIND_UP
