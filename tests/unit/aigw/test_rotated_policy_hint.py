"""``aigw run`` says why a rotated-credentials policy never becomes ready there: it does not rotate."""

from __future__ import annotations

from pathlib import Path

from aigw.standalone.inputs import load_objects
from aigw.standalone.store import build_store
from aigw.standalone.translate import choose_gateway, translate
from controller.translate import BuildOptions

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "standalone"

_API_KEY = """spec:
  type: APIKey
  apiKey:
    secretRef:
      name: openai-api-key"""
_AZURE = """spec:
  type: AzureCredentials
  azureCredentials:
    clientID: app
    tenantID: tenant
    clientSecretRef:
      name: openai-api-key"""


def test_a_rotated_policy_is_reported_with_what_to_use_instead(tmp_path: Path) -> None:
    for f in EXAMPLES.glob("*.yaml"):
        (tmp_path / f.name).write_text(f.read_text())
    openai = tmp_path / "openai.yaml"
    assert _API_KEY in openai.read_text()
    openai.write_text(openai.read_text().replace(_API_KEY, _AZURE))
    loaded = load_objects([tmp_path])
    store, invalid = build_store(loaded.objects)
    assert not loaded.errors and not invalid
    gateway, gateway_object = choose_gateway(store, None)
    tr = translate(
        store,
        gateway=gateway,
        gateway_object=gateway_object,
        options=BuildOptions(
            enable_inference_extension=True, auth_dir=str(tmp_path), config_dir=str(tmp_path)
        ),
        dns={},
    )
    not_ready = [p for p in tr.problems if "CredentialsNotReady" in p]
    assert not_ready, tr.problems
    for p in not_ready:
        assert "aigw run does not rotate credentials" in p, p
    assert not any("CredentialsNotReady" not in p and "does not rotate" in p for p in tr.problems)
