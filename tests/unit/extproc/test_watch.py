from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from extproc.metrics import Metrics
from extproc.watch import ConfigHolder, ConfigWatcher
from tests.unit.extproc.configs import simple_config


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _serving_simple_config(tmp_path: Path) -> tuple[Path, ConfigHolder, Metrics, ConfigWatcher]:
    """A watcher that has loaded ``simple_config()`` from tmp_path/cfg.yaml."""
    path = tmp_path / "cfg.yaml"
    _write(path, yaml.safe_dump(simple_config()).encode())
    holder, metrics = ConfigHolder(), Metrics()
    watcher = ConfigWatcher(path=path, holder=holder, metrics=metrics)
    assert watcher.load_once()
    return path, holder, metrics, watcher


def test_a_bad_file_never_replaces_the_good_snapshot(tmp_path: Path) -> None:
    path, holder, metrics, watcher = _serving_simple_config(tmp_path)
    good = holder.current
    assert len(good.rules) == 2
    _write(path, b"rules: [{route: x, backendRefs: [{name: missing.ns}]}]\n")
    assert watcher.changed()
    assert not watcher.load_once()
    assert holder.current is good
    assert not watcher.changed()  # the same bad file is not retried on every tick
    assert metrics.config_reloads.labels("error")._value.get() == 1
    assert metrics.config_last_error._value.get() == 1


def test_a_credential_file_change_is_a_change(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("k1")
    cfg = simple_config()
    cfg["backends"][0]["auth"] = {"apiKey": {"filename": str(tmp_path / "key")}}
    path = tmp_path / "cfg.yaml"
    _write(path, yaml.safe_dump(cfg).encode())
    holder = ConfigHolder()
    watcher = ConfigWatcher(path=path, holder=holder, metrics=Metrics())
    assert watcher.load_once()
    assert not watcher.changed()
    _write(tmp_path / "key", b"k2-rotated")
    assert watcher.changed()
    assert watcher.load_once()
    assert holder.current.rules[0].backends.items[0].auth_header == ("authorization", "Bearer k2-rotated")  # type: ignore[union-attr]


def _config_with_key(tmp_path: Path, key: Path) -> Path:
    cfg = simple_config()
    cfg["backends"][0]["auth"] = {"apiKey": {"filename": str(key)}}
    path = tmp_path / "cfg.yaml"
    _write(path, yaml.safe_dump(cfg).encode())
    return path


def test_a_non_utf8_credential_file_is_a_config_error_and_fixing_it_reloads(tmp_path: Path) -> None:
    _, holder, metrics, watcher = _serving_simple_config(tmp_path)
    good = holder.current
    key = tmp_path / "key"
    key.write_bytes(b"\xff\xfe not utf-8")
    _config_with_key(tmp_path, key)
    assert watcher.changed()
    assert not watcher.load_once()  # no UnicodeDecodeError escapes
    assert holder.current is good
    assert watcher.last_error is not None and "not UTF-8" in watcher.last_error
    assert metrics.config_reloads.labels("error")._value.get() == 1
    assert not watcher.changed()
    _write(key, b"k-fixed")  # only the credential file changes
    assert watcher.changed()
    assert watcher.load_once()
    assert watcher.last_error is None
    assert holder.current.rules[0].backends.items[0].auth_header == ("authorization", "Bearer k-fixed")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "content", [b"sk-one\nsk-two", b"sk-\x00nul", b"sk-caf\xc3\xa9"], ids=["newline", "nul", "non-ascii"]
)
def test_a_credential_an_http_header_cant_carry_is_rejected_without_echoing_it(
    tmp_path: Path, content: bytes
) -> None:
    key = tmp_path / "key"
    key.write_bytes(content)
    holder, metrics = ConfigHolder(), Metrics()
    watcher = ConfigWatcher(path=_config_with_key(tmp_path, key), holder=holder, metrics=metrics)
    assert not watcher.load_once()
    assert watcher.last_error is not None and "not allowed in an HTTP header" in watcher.last_error
    assert "sk-" not in watcher.last_error


def test_an_unexpected_error_while_loading_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, holder, metrics, watcher = _serving_simple_config(tmp_path)
    good = holder.current

    def explode(_: Path) -> None:
        raise RecursionError("a surprise in the file")

    monkeypatch.setattr("extproc.watch.load_snapshot", explode)
    _write(path, yaml.safe_dump({**simple_config(), "uuid": "new"}).encode())
    assert not watcher.load_once()
    assert holder.current is good
    assert watcher.last_error == "unexpected RecursionError: a surprise in the file"
    assert metrics.config_last_error._value.get() == 1
    monkeypatch.undo()
    assert not watcher.changed()  # the same file is not retried on every tick...
    _write(path, yaml.safe_dump({**simple_config(), "uuid": "newer"}).encode())
    assert watcher.load_once()  # ...but the next change loads
