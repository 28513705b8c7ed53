"""Read Kubernetes objects from YAML files and directories, remembering where each one came from.

This is the only place ``aigw run`` touches its input files. Every problem is an ``InputError`` naming the
file (and the document inside it) and the reason, so that a person can fix it without guessing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from api.corev1 import SECRET, SERVICE
from api.envoygateway import Backend
from api.gatewayapi import GATEWAY, REFERENCE_GRANT
from api.inference_v1 import InferenceObjective
from api.inference_v1 import InferencePool as V1InferencePool
from api.kinds import CRD_KINDS
from api.objects import TopLevelObject

YAML_SUFFIXES = (".yaml", ".yml")

USED_KINDS: dict[str, tuple[str, ...]] = {}
for _k in (
    *(m.KIND_INFO for m in CRD_KINDS),
    Backend.KIND_INFO,
    SECRET,
    SERVICE,
    GATEWAY,
    REFERENCE_GRANT,
    V1InferencePool.KIND_INFO,
    InferenceObjective.KIND_INFO,
):
    USED_KINDS[_k.kind] = (*USED_KINDS.get(_k.kind, ()), _k.group)
"""Kinds ``aigw run`` reads, with the API groups it accepts for each (``""`` is the core group)."""


class InputError(Exception):
    """A problem with one input file: ``str()`` is ``<path>[ (document N)]: <reason>``."""

    def __init__(self, *, path: Path, reason: str, document: int | None = None) -> None:
        self.path = path
        self.reason = reason
        self.document = document
        where = f"{path} (document {document + 1})" if document is not None else str(path)
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True, kw_only=True)
class SourcedObject:
    """One object as read from a file: its identity, its raw body, and where it came from."""

    path: Path
    document: int
    """0-based index of the YAML document inside the file."""
    group: str
    kind: str
    namespace: str
    name: str
    body: dict[str, Any]
    model: TopLevelObject | None = None
    """The validated api model, for the kinds ``api/`` models (set by ``store.build_store``)."""

    @property
    def key(self) -> tuple[str, str, str]:
        """``(kind, namespace, name)``: unique among all inputs."""
        return (self.kind, self.namespace, self.name)

    @property
    def where(self) -> str:
        """``<path> (document N)`` for messages."""
        return f"{self.path} (document {self.document + 1})"


@dataclass(kw_only=True)
class LoadResult:
    """Everything read in one pass: the objects, the problems, and the notices about ignored objects."""

    objects: list[SourcedObject] = field(default_factory=list)
    errors: list[InputError] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def expand_inputs(paths: Sequence[Path]) -> list[Path]:
    """The YAML files named by ``paths``: files as given, directories searched recursively, sorted by path.

    Raises ``InputError`` for a path that does not exist or a directory without any YAML file.
    """
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.suffix in YAML_SUFFIXES and f.is_file())
            if not found:
                raise InputError(path=p, reason="directory holds no .yaml or .yml file")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise InputError(path=p, reason="no such file or directory")
    return list(dict.fromkeys(out))


Fingerprint = dict[Path, tuple[int, int]] | str
"""What ``fingerprint`` returns: file states, or the error text when the inputs cannot be listed."""


def fingerprint(paths: Sequence[Path]) -> Fingerprint:
    """``path -> (mtime_ns, size)`` of every input file, or the error text when the inputs cannot be listed.

    Cheap enough to poll a few times a second; any difference means the inputs must be read again.
    """
    try:
        files = expand_inputs(paths)
    except InputError as e:
        return str(e)
    out: dict[Path, tuple[int, int]] = {}
    for f in files:
        try:
            st = f.stat()
        except OSError as e:
            return f"{f}: {e.strerror}"
        out[f] = (st.st_mtime_ns, st.st_size)
    return out


def load_objects(paths: Sequence[Path], *, default_namespace: str = "default") -> LoadResult:
    """Read every object from ``paths`` (files or directories).

    ``kind: List`` documents are flattened. Kinds ``aigw run`` does not use are listed in ``ignored``. An
    object without ``apiVersion``, ``kind`` or ``metadata.name``, YAML that does not parse, and two objects
    with the same kind, namespace and name are errors.
    """
    result = LoadResult()
    try:
        result.files = expand_inputs(paths)
    except InputError as e:
        result.errors.append(e)
        return result
    seen: dict[tuple[str, str, str], SourcedObject] = {}
    for f in result.files:
        try:
            docs = list(yaml.safe_load_all(f.read_text()))
        except yaml.YAMLError as e:
            result.errors.append(InputError(path=f, reason=f"not valid YAML: {_yaml_reason(e)}"))
            continue
        except (OSError, UnicodeDecodeError) as e:
            result.errors.append(InputError(path=f, reason=f"cannot read: {e}"))
            continue
        for i, doc in enumerate(docs):
            for obj in _flatten(doc):
                try:
                    so = _sourced(obj, path=f, document=i, default_namespace=default_namespace)
                except InputError as e:
                    result.errors.append(e)
                    continue
                if so is None:
                    result.ignored.append(
                        f"{f} (document {i + 1}): {obj.get('kind')} {obj.get('apiVersion')} is not used"
                    )
                    continue
                if (prev := seen.get(so.key)) is not None:
                    result.errors.append(
                        InputError(
                            path=f,
                            document=i,
                            reason=f"{so.kind} {so.namespace}/{so.name} is also defined in {prev.where}",
                        )
                    )
                    continue
                seen[so.key] = so
                result.objects.append(so)
    return result


def _flatten(doc: Any) -> Iterable[dict[str, Any]]:
    if doc is None:
        return []
    if isinstance(doc, dict) and doc.get("kind") == "List" and isinstance(doc.get("items"), list):
        return [x for x in doc["items"] if x is not None]
    return [doc]


def _sourced(obj: Any, *, path: Path, document: int, default_namespace: str) -> SourcedObject | None:
    if not isinstance(obj, dict):
        raise InputError(path=path, document=document, reason=f"expected a mapping, got {type(obj).__name__}")
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not isinstance(api_version, str) or not api_version:
        raise InputError(path=path, document=document, reason="missing apiVersion")
    if not isinstance(kind, str) or not kind:
        raise InputError(path=path, document=document, reason="missing kind")
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = {}
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise InputError(path=path, document=document, reason=f"{kind}: missing metadata.name")
    namespace = meta.get("namespace") or default_namespace
    group = api_version.rpartition("/")[0]
    if group not in USED_KINDS.get(kind, ()):
        return None
    body = dict(obj)
    body["metadata"] = {**meta, "namespace": namespace}
    return SourcedObject(
        path=path, document=document, group=group, kind=kind, namespace=str(namespace), name=name, body=body
    )


def _yaml_reason(e: yaml.YAMLError) -> str:
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or str(e)
    if mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return str(problem)
