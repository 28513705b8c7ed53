"""``aigw run`` refuses a whole change that holds a header credential the ext_proc would refuse (where the
controller's builders leave only that backend out), naming the backend and the Secret data, never the key."""

from __future__ import annotations

from pathlib import Path

from aigw.standalone.inputs import load_objects
from aigw.standalone.store import build_store
from aigw.standalone.translate import Translation, choose_gateway, translate
from controller.translate import BuildOptions

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "standalone"
GOOD_KEY = "apiKey: sk-demo-not-a-real-key"
MEMBER_REF = """    name: demo-llm-2
---"""


def _translate(directory: Path, edits: dict[str, tuple[str, str]] | None = None) -> Translation:
    """Translate a copy of the standalone example, with ``{file stem: (old, new)}`` replacements."""
    for f in EXAMPLES.glob("*.yaml"):
        text = f.read_text()
        if edits and f.stem in edits:
            old, new = edits[f.stem]
            assert old in text, (f.name, old)
            text = text.replace(old, new, 1)
        (directory / f.name).write_text(text)
    loaded = load_objects([directory])
    store, invalid = build_store(loaded.objects)
    assert not loaded.errors and not invalid, (loaded.errors, invalid)
    gateway, gateway_object = choose_gateway(store, None)
    options = BuildOptions(
        enable_inference_extension=True, auth_dir=str(directory), config_dir=str(directory)
    )
    return translate(store, gateway=gateway, gateway_object=gateway_object, options=options, dns={})


def test_a_usable_key_is_not_refused(tmp_path: Path) -> None:
    assert _translate(tmp_path).refusals == ()


def test_a_key_the_ext_proc_would_refuse_is_named_without_its_value(tmp_path: Path) -> None:
    tr = _translate(tmp_path, {"openai": (GOOD_KEY, 'apiKey: "sk-one\\nsk-two"')})
    assert tr.refusals == (
        "backend openai-compatible.default: the credential from Secret data default.openai-api-key.apiKey "
        "holds characters not allowed in an HTTP header",
    )
    assert "sk-one" not in str(tr)


def test_a_pool_member_with_such_a_key_is_refused_too(tmp_path: Path) -> None:
    with_policy = """    name: demo-llm-2
  backendSecurityPolicyRef:
    group: aigateway.envoyproxy.io
    kind: BackendSecurityPolicy
    name: openai-api-key
---"""
    tr = _translate(tmp_path, {"openai": (GOOD_KEY, 'apiKey: ""'), "pool": (MEMBER_REF, with_policy)})
    assert sorted(r.split(":", 1)[0] for r in tr.refusals) == [
        "backend demo-llm-2.default",
        "backend openai-compatible.default",
    ]
    assert all(r.endswith("default.openai-api-key.apiKey is empty") for r in tr.refusals), tr.refusals
