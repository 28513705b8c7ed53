from __future__ import annotations

import os
from pathlib import Path

import yaml

from extproc.metrics import Metrics
from extproc.watch import ConfigHolder, ConfigWatcher
from tests.unit.extproc.configs import simple_config


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def test_a_bad_file_never_replaces_the_good_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "cfg.yaml"
    _write(path, yaml.safe_dump(simple_config()).encode())
    holder, metrics = ConfigHolder(), Metrics()
    watcher = ConfigWatcher(path=path, holder=holder, metrics=metrics)
    assert watcher.load_once()
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
    assert holder.current.rules[0].backends.items[0].authorization == "Bearer k2-rotated"  # type: ignore[union-attr]
