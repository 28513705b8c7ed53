"""The Helm charts agree with the code, checked without helm (tests/integration/helm renders them for
real): every ``aigw-controller`` flag is a chart value that the chart's template turns into that flag, the
schema describes exactly the values, and the chart's ClusterRole rules are config/rbac's (copied by
``make manifests``). In the unit tier, so that a new flag or a changed RBAC rule fails where every change is
tested."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path
from typing import Any

import yaml

from controller.main import parse_args
from tests.integration.helm.values import (
    CHART,
    CRD_CHART,
    EG_VALUES,
    FLAGS,
    NAMESPACE,
    NOT_A_VALUE,
    ROOT,
    helm_installs,
    option_value,
    readme_helm_installs,
)

VALUES: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
SCHEMA: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
HELPERS = (CHART / "templates" / "_helpers.tpl").read_text()


def test_every_controller_flag_is_a_chart_value() -> None:
    options = set(vars(parse_args([])))
    missing, extra = options - NOT_A_VALUE - set(FLAGS), set(FLAGS) - options
    assert not missing and not extra, (
        f"aigw-controller options without a chart value: {sorted(missing)}, chart values without an option: "
        f"{sorted(extra)}. Give each flag a value under controller: in charts/ai-gateway-py (values.yaml, "
        "values.schema.json, the aigw.args template in templates/_helpers.tpl) and a row in "
        "tests/integration/helm/values.py FLAGS (which the helm tests render and parse)."
    )
    assert set(VALUES["controller"]) == {key for key, _, _ in FLAGS.values()}
    assert set(SCHEMA["properties"]["controller"]["properties"]) == set(VALUES["controller"])
    for option, (key, _, _) in FLAGS.items():
        flag = "--" + option.replace("_", "-")
        assert flag in HELPERS and f"$c.{key}" in HELPERS, f"templates/_helpers.tpl sets no {flag} from {key}"


def test_the_schema_describes_exactly_the_values() -> None:
    assert set(SCHEMA["properties"]) - {"global"} == set(VALUES)
    assert SCHEMA["additionalProperties"] is False, "a misspelt value must be refused, not ignored"


def test_the_charts_cluster_role_is_config_rbacs() -> None:
    copy = CHART / "files" / "clusterrole.yaml"
    assert copy.read_text() == (ROOT / "config" / "rbac" / "role.yaml").read_text(), (
        f"{copy.relative_to(ROOT)} differs from config/rbac/role.yaml: run `make manifests`"
    )
    template = (CHART / "templates" / "clusterrole.yaml").read_text()
    assert '.Files.Get "files/clusterrole.yaml"' in template


def controller_flags() -> set[str]:
    """Every option string of ``aigw-controller`` (aliases included), read from its ``--help``."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        parse_args(["--help"])
    flags: set[str] = set()
    for line in out.getvalue().splitlines():
        if m := re.match(r"^  (-\S.*?)(?:\s{2,}|$)", line):  # the invocation column of an option
            flags |= set(re.findall(r"--[a-z][a-z-]*", m.group(1)))
    return flags - {"--help"}


def test_extra_args_accept_exactly_the_controllers_flags() -> None:
    pattern = SCHEMA["properties"]["extraArgs"]["items"]["pattern"]
    m = re.fullmatch(r"\^--\(([a-z|-]+)\)\(=\.\*\)\?\$", pattern)
    assert m, f"extraArgs pattern {pattern!r} is not ^--(flag|...)(=.*)?$"
    listed = {f"--{name}" for name in m.group(1).split("|")}
    assert listed == controller_flags(), (
        f"values.schema.json extraArgs: add {sorted(controller_flags() - listed)}, "
        f"remove {sorted(listed - controller_flags())}"
    )
    assert "--metrics-address" in listed, "aliases are flags too"


def test_the_readmes_helm_installs_are_kind_ups() -> None:
    installs = readme_helm_installs()
    assert set(installs) == {"eg", "aigw-crds", "aigw"}, (
        "the README's install block changed: update this test"
    )
    kind_up = (ROOT / "hack" / "kind-up.sh").read_text()
    m = re.search(r'^EG_VERSION="\$\{EG_VERSION:-([0-9.]+)\}"$', kind_up, re.MULTILINE)
    assert m, "hack/kind-up.sh sets no default EG_VERSION"
    eg = installs["eg"]
    assert eg[2] == "oci://docker.io/envoyproxy/gateway-helm" and eg[2] in kind_up
    assert option_value(eg, "--version", default="") == f"v{m.group(1)}"
    assert option_value(eg, "-f", "--values", default="") == str(EG_VALUES.relative_to(ROOT))
    assert option_value(eg, "-n", "--namespace", default="") == "envoy-gateway-system"
    assert "--namespace envoy-gateway-system" in kind_up
    assert installs["aigw-crds"][2] == str(CRD_CHART.relative_to(ROOT))
    assert installs["aigw"][2] == str(CHART.relative_to(ROOT))
    assert option_value(installs["aigw"], "-n", "--namespace", default="") == NAMESPACE, (
        "Envoy Gateway's values point at the controller in this namespace"
    )


def resolved(args: list[str], base: Path) -> list[str]:
    """``args`` with each path that exists relative to ``base`` made absolute."""
    return [str((base / a).resolve()) if ("/" in a or a == ".") and (base / a).exists() else a for a in args]


def test_the_chart_readme_installs_what_the_readme_does() -> None:
    readme = {k: resolved(v, ROOT) for k, v in readme_helm_installs().items()}
    chart = {k: resolved(v, CHART) for k, v in helm_installs((CHART / "README.md").read_text()).items()}
    assert chart == readme
    crd_readme = helm_installs((CRD_CHART / "README.md").read_text())
    assert {k: resolved(v, ROOT) for k, v in crd_readme.items()} == {"aigw-crds": readme["aigw-crds"]}


def test_every_envoy_gateway_version_the_docs_name_is_kind_ups() -> None:
    m = re.search(
        r'^EG_VERSION="\$\{EG_VERSION:-([0-9.]+)\}"$', (ROOT / "hack" / "kind-up.sh").read_text(), re.M
    )
    assert m
    docs = [ROOT / "README.md", CHART / "README.md", EG_VALUES, CHART / "templates" / "NOTES.txt"]
    for doc in docs:
        text = doc.read_text()
        named = re.findall(
            r"gateway-helm[\s\\]+--version v(\d+\.\d+\.\d+)|Envoy Gateway v(\d+\.\d+\.\d+)", text
        )
        found = {a or b for a, b in named}
        assert found == {m.group(1)}, f"{doc.relative_to(ROOT)} names Envoy Gateway {found}"


def subset(part: Any, whole: Any) -> bool:
    """Whether every key and value of ``part`` is in ``whole`` (recursively; lists and scalars equal)."""
    if isinstance(part, dict):
        return isinstance(whole, dict) and all(k in whole and subset(v, whole[k]) for k, v in part.items())
    return bool(part == whole)


def test_the_readmes_extension_manager_excerpt_is_the_values_files() -> None:
    text = (ROOT / "README.md").read_text()
    block = text.split("field by field:\n\n```yaml\n", 1)[1].split("```", 1)[0]
    excerpt = yaml.safe_load(block)
    shipped = yaml.safe_load(EG_VALUES.read_text())["config"]["envoyGateway"]
    assert set(excerpt) == {"extensionManager"}
    assert subset(excerpt, shipped), (
        f"the README's extensionManager differs from {EG_VALUES.relative_to(ROOT)}"
    )
