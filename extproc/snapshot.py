"""Load, validate and compile the filter config into an immutable ``Snapshot`` the hot path reads without
I/O."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import cel
import orjson
import pydantic
import yaml

from api import filterconfig as fc
from api import headers as hdr
from api.costexpr import CostExpressionError, compile_cost
from extproc.epp import EppTarget
from extproc.providers.sigv4 import CredentialsFileError, SigV4Signer, read_credentials_file
from extproc.weighted import WeightedTable

log = logging.getLogger(__name__)

_PROVIDERS: Mapping[fc.APISchemaName, str] = {
    fc.APISchemaName.OPENAI: "openai",
    fc.APISchemaName.AWS_BEDROCK: "aws.bedrock",
    fc.APISchemaName.AZURE_OPENAI: "azure.openai",
}


_UpstreamFactory = Callable[[str, "fc.VersionedAPISchema", "fc.BackendAuth | None"], "Upstream"]


class ConfigError(Exception):
    """The filter config file cannot be read, parsed, validated or compiled. The message says why.

    ``files`` are the credential files the failed attempt read or tried to read: the watcher watches them, so
    fixing one of them (not only the config file) triggers the next attempt."""

    def __init__(self, message: str, *, files: tuple[Path, ...] = ()) -> None:
        super().__init__(message)
        self.files = files


@dataclass(frozen=True, slots=True, kw_only=True)
class Upstream:
    """An AIServiceBackend, reached directly or as a pool member: what the request path sets for it."""

    name: str
    schema: fc.APISchemaName
    schema_version: str | None
    provider: str
    """``gen_ai.provider.name`` label value."""
    auth_header: tuple[str, str] | None = field(default=None, repr=False)
    """``(name, value)`` of the credential header (``authorization: Bearer …`` or Azure's ``api-key``), read
    from the credential file; never logged."""
    signer: SigV4Signer | None = field(default=None, repr=False)
    """Set for AWS credentials: the request is SigV4-signed after every other mutation."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolEndpoint:
    """One endpoint of a pool: its ``ip:port``, the hostname it came from, and the member it belongs to."""

    address: str
    hostname: str | None
    member: Upstream


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolModel:
    """An InferenceModel: the client-facing name, its criticality and the weighted target model names."""

    name: str
    criticality: fc.Criticality
    targets: WeightedTable[str] | None
    """None when no targetModels are declared (the model name is sent unchanged)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Pool:
    name: str
    endpoints: tuple[PoolEndpoint, ...]
    models: Mapping[str, PoolModel]
    picker: fc.EndpointPickerConfig = field(default_factory=fc.EndpointPickerConfig)
    serves_any_model: bool = False
    """A v1 pool: a model without an entry in ``models`` is served under its own name (``model_for``)."""
    members: tuple[Upstream, ...] = ()
    """Its members, also those without an endpoint (what an external picker's endpoint belongs to)."""
    external: EppTarget | None = None
    """The external endpoint picker that chooses this pool's endpoints (``extproc.epp``); None: ours."""
    objectives: Mapping[str, fc.Criticality] = field(default_factory=lambda: MappingProxyType({}))
    """A v1 pool's InferenceObjectives by name, as the criticality their priority means."""

    def model_for(self, name: str, *, objective: str | None = None) -> PoolModel | None:
        """The InferenceModel for the request's model; for a v1 pool, any model, unrewritten, at the
        criticality of the InferenceObjective the request names (``objective``; unknown or none: Standard)."""
        model = self.models.get(name)
        if model is None and self.serves_any_model:
            crit = self.objectives.get(objective or "", fc.Criticality.STANDARD)
            return PoolModel(name=name, criticality=crit, targets=None)
        return model


def criticality_of(priority: int) -> fc.Criticality:
    """An InferenceObjective's priority as our shedding's criticality: below 0 Sheddable (the Inference
    Extension sheds exactly those), 0 Standard, above 0 Critical (never shed)."""
    if priority < 0:
        return fc.Criticality.SHEDDABLE
    return fc.Criticality.CRITICAL if priority > 0 else fc.Criticality.STANDARD


@dataclass(frozen=True, slots=True, kw_only=True)
class Cost:
    """One ``llmRequestCosts`` entry: the metadata key and which token count it carries (or, for CEL, the
    compiled program that computes it)."""

    route: str
    metadata_key: str
    type: fc.CostType
    program: cel.Program | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Fallback:
    """Where a rule sends a pool's requests while the pool can't serve them, and the model name it sends."""

    target: Upstream | Pool
    model: str | None
    """The model name the fallback gets; None: the request's."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    route: str
    matches: tuple[tuple[tuple[str, str], ...], ...]
    """Any-of matches, each an all-of tuple of (lower-case header name, exact value). Empty = match all."""
    backends: WeightedTable[Upstream | Pool]
    costs: tuple[Cost, ...]
    fallbacks: Mapping[str, Fallback] = field(default_factory=lambda: MappingProxyType({}))
    """By pool name: the fallback of each of the rule's pools that has one."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """A compiled filter config. Immutable; the server swaps whole snapshots, never edits one."""

    version: str
    uuid: str
    content_hash: str
    """sha256 (hex, first 16 chars) of the file bytes this snapshot was compiled from."""
    model_header: str
    selected_backend_header: str
    original_dst_header: str
    metadata_namespace: str
    rules: tuple[Rule, ...]
    match_header_names: frozenset[str]
    """Every header name some rule matches on: the only request headers the router needs."""
    models_body: bytes
    """The ``/v1/models`` answer (the models a request can reach, ``reachable_models``), pre-serialized."""
    credential_files: tuple[Path, ...]
    """Files the snapshot read credentials from: a change to one of them triggers a reload."""


def load_snapshot(path: Path) -> Snapshot:
    """Read, validate and compile the filter config at ``path``. Raises ConfigError saying what is wrong."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror or e}") from e
    return compile_bytes(raw, base_dir=path.parent)


def compile_bytes(raw: bytes, *, base_dir: Path) -> Snapshot:
    """Parse YAML (or JSON) ``raw`` as a FilterConfig and compile it; relative credential paths use
    ``base_dir``."""
    try:
        doc = yaml.safe_load(raw)
    except yaml.YAMLError as e:
        raise ConfigError(f"not valid YAML: {e}") from e
    if not isinstance(doc, dict):
        raise ConfigError(f"expected a mapping at the top level, got {type(doc).__name__}")
    version = doc.get("version", fc.FILTER_CONFIG_VERSION)
    if version != fc.FILTER_CONFIG_VERSION:
        raise ConfigError(
            f"unknown filter config version {version!r} (this ext_proc reads {fc.FILTER_CONFIG_VERSION!r})"
        )
    try:
        config = fc.FilterConfig.model_validate(doc)
    except pydantic.ValidationError as e:
        raise ConfigError(f"invalid filter config: {e}") from e
    return compile_config(config, content_hash=hashlib.sha256(raw).hexdigest()[:16], base_dir=base_dir)


def compile_config(config: fc.FilterConfig, *, content_hash: str, base_dir: Path) -> Snapshot:
    """Compile a validated FilterConfig. Raises ConfigError (with ``files`` set) when a credential file cannot
    be read, is not UTF-8, is empty or holds characters an HTTP header can't carry."""
    credential_files: list[Path] = []
    try:
        return _compile(
            config, content_hash=content_hash, base_dir=base_dir, credential_files=credential_files
        )
    except ConfigError as e:
        raise ConfigError(str(e), files=tuple(credential_files)) from e


def _compile(
    config: fc.FilterConfig, *, content_hash: str, base_dir: Path, credential_files: list[Path]
) -> Snapshot:

    def upstream(name: str, schema: fc.VersionedAPISchema, auth: fc.BackendAuth | None) -> Upstream:
        return Upstream(
            name=name,
            schema=schema.name,
            schema_version=schema.version,
            provider=_PROVIDERS[schema.name],
            auth_header=_auth_header(name, schema, auth, base_dir=base_dir, read=credential_files),
            signer=_signer(name, auth, base_dir=base_dir, read=credential_files),
        )

    backends = {b.name: upstream(b.name, b.schema_, b.auth) for b in config.backends}
    pools = {p.name: _compile_pool(p, upstream) for p in config.pools}
    costs_by_route: dict[str, list[Cost]] = {}
    for c in config.llm_request_costs:
        program = None
        if c.type == fc.CostType.CEL and c.cel is not None:
            try:
                program = compile_cost(c.cel)
            except CostExpressionError as e:
                raise ConfigError(f"llmRequestCosts {c.route}/{c.metadata_key}: CEL expression: {e}") from e
        costs_by_route.setdefault(c.route, []).append(
            Cost(route=c.route, metadata_key=c.metadata_key, type=c.type, program=program)
        )

    rules: list[Rule] = []
    match_names: set[str] = set()
    for r in config.rules:

        def target(kind: fc.BackendKind, name: str) -> Upstream | Pool:
            return pools[name] if kind == fc.BackendKind.INFERENCE_POOL else backends[name]

        targets = [target(ref.kind, ref.name) for ref in r.backend_refs]
        fallbacks = {
            ref.name: Fallback(target=target(fb.kind, fb.name), model=fb.model_name_override)
            for ref in r.backend_refs
            if (fb := ref.fallback) is not None
        }
        matches = tuple(tuple((h.name, h.value) for h in m.headers) for m in r.matches)
        match_names.update(name for m in matches for name, _ in m)
        rules.append(
            Rule(
                route=r.route,
                matches=matches,
                backends=WeightedTable(items=targets, weights=[ref.weight for ref in r.backend_refs]),
                costs=tuple(costs_by_route.get(r.route, ())),
                fallbacks=MappingProxyType(fallbacks),
            )
        )
    model_header = config.model_name_header_key.lower()
    return Snapshot(
        version=config.version,
        uuid=config.uuid,
        content_hash=content_hash,
        model_header=model_header,
        selected_backend_header=config.selected_backend_header_key.lower(),
        original_dst_header=config.original_destination_header_key.lower(),
        metadata_namespace=config.metadata_namespace,
        rules=tuple(rules),
        match_header_names=frozenset(match_names),
        models_body=_models_body(reachable_models(tuple(rules), model_header=model_header)),
        credential_files=tuple(credential_files),
    )


def _compile_pool(p: fc.InferencePool, upstream: _UpstreamFactory) -> Pool:
    endpoints: list[PoolEndpoint] = []
    members: list[Upstream] = []
    for m in p.members:
        member = upstream(m.name, m.schema_, m.auth)
        members.append(member)
        endpoints.extend(
            PoolEndpoint(address=e.address, hostname=e.hostname, member=member) for e in m.endpoints
        )
    models = {
        im.model_name: PoolModel(
            name=im.model_name,
            criticality=im.criticality,
            targets=WeightedTable(
                items=[t.name for t in im.target_models],
                # weights are all set or all unset (validated); unset means equal shares
                weights=[t.weight if t.weight is not None else 1 for t in im.target_models],
            )
            if im.target_models
            else None,
        )
        for im in p.models
    }
    ext = p.external_picker
    external = (
        EppTarget(
            service=ext.service,
            addresses=tuple(e.address for e in ext.endpoints),
            timeout=ext.timeout_seconds,
            ports=frozenset(ext.target_ports),
            fail_open=ext.failure_mode == fc.ExternalPickerFailureMode.FAIL_OPEN,
            tls=ext.tls,
        )
        if ext is not None
        else None
    )
    return Pool(
        name=p.name,
        endpoints=tuple(endpoints),
        models=MappingProxyType(models),
        picker=p.picker or fc.EndpointPickerConfig(),
        serves_any_model=p.serves_any_model,
        members=tuple(members),
        external=external,
        objectives=MappingProxyType({o.name: criticality_of(o.priority) for o in p.objectives}),
    )


def _auth_header(
    name: str, schema: fc.VersionedAPISchema, auth: fc.BackendAuth | None, *, base_dir: Path, read: list[Path]
) -> tuple[str, str] | None:
    if auth is None or auth.aws is not None:
        return None
    filename = (
        auth.api_key.filename if auth.api_key is not None else auth.azure.filename if auth.azure else ""
    )
    path = base_dir / filename
    read.append(path)  # before reading: a file that fails is watched too, so fixing it retries
    try:
        secret = hdr.header_credential(path.read_bytes())
    except OSError as e:
        raise ConfigError(f"backend {name}: cannot read credential file {path}: {e.strerror or e}") from e
    except ValueError as e:
        raise ConfigError(f"backend {name}: credential file {path} {e}") from e
    if auth.api_key is not None and schema.name == fc.APISchemaName.AZURE_OPENAI:
        return ("api-key", secret)  # an Azure OpenAI resource key; Entra ID tokens go as bearer
    return ("authorization", f"Bearer {secret}")


def _signer(
    name: str, auth: fc.BackendAuth | None, *, base_dir: Path, read: list[Path]
) -> SigV4Signer | None:
    if auth is None or auth.aws is None:
        return None
    path = base_dir / auth.aws.credential_file_name
    read.append(path)  # before reading, as above; rotated credentials are picked up by the watcher's reload
    try:
        credentials = read_credentials_file(path, profile=auth.aws.profile)
    except CredentialsFileError as e:
        raise ConfigError(f"backend {name}: {e}") from e
    return SigV4Signer(region=auth.aws.region, credentials=credentials)


def reachable_models(rules: tuple[Rule, ...], *, model_header: str) -> list[str]:
    """The model names some request can reach, in first-seen order: the ``/v1/models`` list.

    Candidates are the model-header values of the rules' matches and the InferenceModels of the rules' pools.
    A name is reachable when a rule that a request for it can reach (``match_rule``'s order: the first rule
    that matches wins) serves it: the rule has an AIServiceBackend, or a pool with an InferenceModel of that
    name (or a v1 pool, which serves any name). A rule that takes every request for the name (no matches, or
    a match on nothing but the model header with that value) ends the walk; a rule that needs other headers
    too may or may not take the request, so the walk goes on past it. A rule without backends (its pool or
    backends were deleted) serves nothing: requests for its models get 404, so they are not listed.
    """
    names: dict[str, None] = {}
    for r in rules:
        for match in r.matches:
            names.update((v, None) for h, v in match if h == model_header)
        for b in r.backends.items:
            if isinstance(b, Pool):
                names.update(dict.fromkeys(b.models))
    return [n for n in names if _reachable(n, rules, model_header=model_header)]


def _reachable(name: str, rules: tuple[Rule, ...], *, model_header: str) -> bool:
    for r in rules:
        fits = [m for m in r.matches if all(v == name for h, v in m if h == model_header)]
        if r.matches and not fits:
            continue
        if any(isinstance(b, Upstream) or b.model_for(name) is not None for b in r.backends.items):
            return True
        if not r.matches or any(all(h == model_header for h, _ in m) for m in fits):
            return False
    return False


def _models_body(ids: list[str]) -> bytes:
    created = int(time.time())
    return orjson.dumps(
        {
            "object": "list",
            "data": [
                {"id": i, "object": "model", "created": created, "owned_by": "Envoy AI Gateway"} for i in ids
            ],
        }
    )


EMPTY_SNAPSHOT: Snapshot = compile_config(fc.FilterConfig(), content_hash="", base_dir=Path("."))
"""What serves before any config loaded: every model request gets 404."""
