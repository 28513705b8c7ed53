"""``controller.main.controller_settings``: each flag that configures the controllers reaches them (the RBAC
tests run the controller from its Deployment's arguments through it, as ``aigw-controller`` does)."""

from __future__ import annotations

from controller.main import controller_settings, parse_args
from controller.rotation.providers import Endpoints


def test_the_flags_reach_the_controllers() -> None:
    args = parse_args([
        "--watch-namespace=team-a", "--concurrent-reconciles=7", "--no-extproc-mtls", "--max-body-bytes=1Mi",
        "--aws-sts-endpoint=https://sts.example.test", "--azure-authority-host=https://login.example.test",
        "--enable-inference-extension", "--cluster-domain=corp.internal",
    ])  # fmt: skip
    settings = controller_settings(args, inference_v1=True, inference_objectives=False)
    assert (settings.watch_namespace, settings.concurrent_reconciles) == ("team-a", 7)
    assert (settings.inference_v1, settings.inference_objectives) == (True, False)
    assert settings.token_endpoints == Endpoints(
        sts_endpoint="https://sts.example.test", azure_authority="https://login.example.test"
    )
    options = settings.options
    assert options.extproc_mtls is False and options.enable_inference_extension
    assert (options.max_body_bytes, options.cluster_domain) == (1024 * 1024, "corp.internal")


def test_the_defaults_are_the_controllers() -> None:
    settings = controller_settings(parse_args([]), inference_v1=False, inference_objectives=False)
    assert settings.watch_namespace is None and settings.concurrent_reconciles == 4
    assert settings.options.extproc_mtls is True, "ext_proc mutual TLS is on by default"
