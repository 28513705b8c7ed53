"""One HTTP request's walk through the ext_proc: a state machine fed the stream's messages in order.

``RequestProcessor.handle`` takes one ``ProcessingRequest`` and returns the serialized ``ProcessingResponse``.
It does no I/O: everything it needs is in the snapshot it captured when the request headers arrived, so a
config swap mid-request never mixes two configs. ``finish`` records the request's metrics when the stream
ends.
"""

from __future__ import annotations

import logging
import random
import time
import urllib.parse
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from api import headers as hdr
from api.filterconfig import ExternalPickerFailureMode as FailureMode
from extproc import errors, wire
from extproc.body import BadBodyError, ParsedBody, parse_request_body, with_model
from extproc.costs import cost_values
from extproc.epp import EppClient, EppSession, EppTarget, EppUnavailableError
from extproc.metrics import Metrics
from extproc.picker import EndpointPicker, PickRefusedError, PickRequest
from extproc.router import match_rule, pick_backend
from extproc.signals import Lease, SignalStore
from extproc.snapshot import Fallback, Pool, PoolModel, Rule, Snapshot, Upstream
from extproc.translate import BedrockResponse, TranslationError, edit_request, signed
from extproc.usage import SSEUsageParser, Usage, usage_from_json
from extproc.watch import ConfigHolder

log = logging.getLogger(__name__)

OPERATIONS: Final = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "completion",
    "/v1/embeddings": "embeddings",
}
"""Paths routed by the body's ``model``, and their ``gen_ai.operation.name``."""
MODELS_PATH: Final = "/v1/models"
MODEL_PATH_PREFIX: Final = MODELS_PATH + "/"
OPERATION_METHODS: Final = ("POST",)
"""The methods the ``OPERATIONS`` paths accept, as OpenAI's API does; any other gets 405."""
MODELS_METHODS: Final = ("GET", "HEAD")
"""The methods ``MODELS_PATH`` accepts (HEAD: Envoy's local reply drops the body); any other gets 405."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Dependencies:
    """What every request processor shares: the config holder, the picker, metrics and randomness, and the
    pool endpoints' signals (in-flight counts and response times, which the picker reads)."""

    holder: ConfigHolder
    picker: EndpointPicker
    metrics: Metrics
    rng: random.Random
    signals: SignalStore = field(default_factory=SignalStore)
    epp: EppClient = field(default_factory=EppClient)


class _Prepared:
    """Per-snapshot pre-serialized answers; rebuilt only when the snapshot object changes."""

    __slots__ = ("model_answers", "models", "snapshot", "strip_headers", "strip_names")

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        names = dict.fromkeys(
            (*hdr.CLIENT_ROUTING_HEADERS, snapshot.selected_backend_header, snapshot.original_dst_header)
        )
        self.strip_names: tuple[str, ...] = tuple(names)
        self.strip_headers = wire.request_headers_response(remove=self.strip_names)
        self.models = wire.immediate(status=200, body=snapshot.models_body)
        self.model_answers = {  # GET /v1/models/<id>: the list's entry for that model
            str(m["id"]): wire.immediate(status=200, body=orjson.dumps(m))
            for m in orjson.loads(snapshot.models_body)["data"]
        }


_prepared: _Prepared | None = None


def _prepare(snapshot: Snapshot) -> _Prepared:
    global _prepared
    p = _prepared
    if p is None or p.snapshot is not snapshot:
        p = _prepared = _Prepared(snapshot)
    return p


def _credential_metadata(credential: dict[str, str]) -> dict[str, dict[str, str]] | None:
    return {hdr.CREDENTIAL_METADATA_NAMESPACE: credential} if credential else None


EPP_WARNING_INTERVAL: Final = 10.0
"""Seconds between two warnings about one pool's failing endpoint picker (the metric counts every one)."""
_epp_warned: dict[str, float] = {}


def _warn_epp_failure(pool: str, message: str) -> None:
    """Log a pool's EPP failure as a warning at most every ``EPP_WARNING_INTERVAL`` (an EPP that is down
    fails every request; the log must not drown), at debug otherwise."""
    now = time.monotonic()
    if now - _epp_warned.get(pool, -EPP_WARNING_INTERVAL) >= EPP_WARNING_INTERVAL:
        _epp_warned[pool] = now
        log.warning("pool %s: %s", pool, message)
    else:
        log.debug("pool %s: %s", pool, message)


def _header_value(h: Any) -> str:
    raw: bytes = h.raw_value
    return raw.decode("utf-8", "replace") if raw else str(h.value)


def _content_codings(value: str) -> list[str]:
    """The codings a ``Content-Encoding`` value applies, other than ``identity`` (which changes nothing)."""
    return [c for c in (t.strip().lower() for t in value.split(",")) if c and c != "identity"]


class RequestProcessor:
    """The state of one request. Not thread-safe; one instance per ext_proc stream."""

    __slots__ = (
        "_backend",
        "_body_chunks",
        "_deps",
        "_epp",
        "_first_chunk_at",
        "_headers",
        "_lease",
        "_local_reply",
        "_model",
        "_operation",
        "_outcome",
        "_prepared",
        "_provider",
        "_response_ended",
        "_response_headers",
        "_rule",
        "_sse",
        "_started",
        "_status",
        "_stream",
        "_translator",
        "_usage",
    )

    def __init__(self, *, deps: Dependencies) -> None:
        self._deps = deps
        self._prepared = _prepare(deps.holder.current)
        self._started = time.perf_counter()
        self._headers: dict[str, str] = {}
        self._operation = ""
        self._model = ""
        self._provider = ""
        self._backend = ""
        self._rule: Rule | None = None
        self._stream = False
        self._status = 0
        self._outcome: str | None = None
        self._usage: Usage | None = None
        self._sse: SSEUsageParser | None = None
        self._first_chunk_at = 0.0
        self._body_chunks: list[bytes] = []
        self._local_reply = False
        self._response_ended = False  # the response's last message (``end_of_stream``) arrived
        self._lease: Lease | None = None
        """The picked pool endpoint's in-flight claim; ended when the response ends or the stream does."""
        self._translator: BedrockResponse | None = None
        self._response_headers: dict[str, str] = {}
        self._epp: EppSession | None = None
        """The stream to the pool's external endpoint picker, which also gets the response."""

    # -- dispatch ---------------------------------------------------------------------------------

    def handle(self, req: Any) -> bytes | Coroutine[Any, Any, bytes]:
        """The serialized answer to one ProcessingRequest; a coroutine to await for a request body routed to
        a pool with an external endpoint picker (the only answer that needs I/O)."""
        kind = req.WhichOneof("request")
        if kind == "request_headers":
            return self._on_request_headers(req.request_headers)
        if kind == "request_body":
            return self._on_request_body(req.request_body)
        if kind == "response_headers":
            return self._on_response_headers(req.response_headers)
        if kind == "response_body":
            return self._on_response_body(req.response_body)
        if kind == "request_trailers":
            return wire.REQUEST_TRAILERS_CONTINUE
        return wire.RESPONSE_TRAILERS_CONTINUE

    # -- request ----------------------------------------------------------------------------------

    def _on_request_headers(self, msg: Any) -> bytes:
        headers = self._headers
        for h in msg.headers.headers:
            headers[h.key] = _header_value(h)
        path = headers.get(":path", "")
        path = path.split("?", 1)[0]
        operation = OPERATIONS.get(path)
        method = headers.get(":method", "")
        if operation is not None:
            self._operation = operation
            if method not in OPERATION_METHODS:
                return self._method_not_allowed(path, method, OPERATION_METHODS)
            encodings = _content_codings(headers.get("content-encoding", ""))
            if encodings:
                # routing needs the JSON, and model servers take none: refused before the body is buffered
                return self._reject(
                    415,
                    "bad_request",
                    errors.INVALID_REQUEST,
                    "unsupported_content_encoding",
                    f"Content-Encoding {', '.join(encodings)} is not supported; "
                    "send the JSON body uncompressed",
                    extra_headers=(("accept-encoding", "identity"),),
                )
            if msg.end_of_stream:
                return self._reject(
                    400,
                    "bad_request",
                    errors.INVALID_REQUEST,
                    "missing_body",
                    f"{path} needs a JSON body with a 'model' field",
                )
            return self._prepared.strip_headers
        if path == MODELS_PATH:
            if method not in MODELS_METHODS:
                return self._method_not_allowed(path, method, MODELS_METHODS)
            self._outcome = "ok"
            return self._prepared.models
        if path.startswith(MODEL_PATH_PREFIX):  # the OpenAI SDKs' models.retrieve(id); an id may hold "/"
            if method not in MODELS_METHODS:
                return self._method_not_allowed(path, method, MODELS_METHODS)
            name = urllib.parse.unquote(path[len(MODEL_PATH_PREFIX) :])
            answer = self._prepared.model_answers.get(name)
            if answer is None:
                return self._reject(
                    404,
                    "model_not_found",
                    errors.NOT_FOUND,
                    "model_not_found",
                    f"model {errors.quoted(name)} is not served by this gateway",
                )
            self._outcome = "ok"
            return answer
        return self._reject(
            404,
            "model_not_found",
            errors.NOT_FOUND,
            "unknown_path",
            f"unknown path {errors.quoted(path)}; this gateway serves /v1/chat/completions, "
            "/v1/completions, /v1/embeddings and /v1/models",
        )

    def _on_request_body(self, msg: Any) -> bytes | Coroutine[Any, Any, bytes]:
        # BUFFERED (what Envoy must be configured with) sends one message; if a body ever arrives in parts,
        # route on the whole of it
        if not msg.end_of_stream:
            self._body_chunks.append(msg.body)
            return wire.REQUEST_BODY_CONTINUE
        raw: bytes = b"".join((*self._body_chunks, msg.body)) if self._body_chunks else msg.body
        self._body_chunks = []
        try:
            parsed = parse_request_body(raw)
        except BadBodyError as e:
            return self._reject(400, "bad_request", errors.INVALID_REQUEST, "invalid_body", str(e))
        self._model = parsed.model
        self._stream = parsed.stream
        snapshot = self._prepared.snapshot
        headers = self._headers
        headers[snapshot.model_header] = parsed.model  # matches see the body's model, never a client value
        rule = match_rule(snapshot, headers)
        if rule is None:
            return self._reject(
                404,
                "model_not_found",
                errors.NOT_FOUND,
                "model_not_found",
                f"model {errors.quoted(parsed.model)} is not served by this gateway",
            )
        self._rule = rule
        backend = pick_backend(rule, rng=self._deps.rng)
        if backend is None:
            return self._reject(
                404,
                "model_not_found",
                errors.NOT_FOUND,
                "model_not_found",
                f"model {errors.quoted(parsed.model)}: route {rule.route} has no backend",
            )
        if isinstance(backend, Pool):
            return self._route_to_pool(backend, parsed, raw, model_name=parsed.model, rule=rule)
        return self._route_to_backend(backend, parsed, raw, model=parsed.model)

    def _upstream_request(
        self, upstream: Upstream, parsed: ParsedBody, *, model: str, raw: bytes, body: bytes | None
    ) -> tuple[list[Any], bytes | None, dict[str, str]]:
        """Headers, body and credential for ``upstream`` (``model`` after any rewrite; ``body`` the rewritten
        body or None): the schema's translation and credential, then SigV4 over the final path and body, last.

        The credential (``hdr.CREDENTIAL_HEADERS``: the key, SigV4's signature and session token) is returned
        apart, as metadata values by header name, and never as a header: the routes our controller generated
        copy it into the request at Envoy's router, so a route someone else attached that outranks ours never
        sees it."""
        snapshot = self._prepared.snapshot
        self._provider = upstream.provider
        self._backend = upstream.name
        edit = edit_request(
            upstream=upstream,
            operation=self._operation,
            document=parsed.document,
            model=model,
            stream=parsed.stream,
            client_model=self._model,
            id_=f"chatcmpl-{self._deps.rng.getrandbits(96):024x}",
            created=int(time.time()),
        )
        self._translator = edit.response
        if edit.body is not None:
            body = edit.body
        pairs = [(snapshot.model_header, self._model), *edit.headers]
        if edit.path is not None:
            pairs.append((":path", edit.path))
        if body is not None:
            pairs.append(("content-length", str(len(body))))
        pairs.extend(
            signed(
                upstream,
                path=edit.path or self._headers.get(":path", ""),
                body=body if body is not None else raw,
            )
        )
        credential = {k: v for k, v in pairs if k in hdr.CREDENTIAL_HEADERS}
        return [wire.header(k, v) for k, v in pairs if k not in credential], body, credential

    def _route_to_backend(self, backend: Upstream, parsed: ParsedBody, raw: bytes, *, model: str) -> bytes:
        snapshot = self._prepared.snapshot
        body = with_model(parsed, model) if model != parsed.model else None
        try:
            set_headers, body, credential = self._upstream_request(
                backend, parsed, model=model, raw=raw, body=body
            )
        except TranslationError as e:
            return self._reject(400, "bad_request", errors.INVALID_REQUEST, "unsupported_request", str(e))
        set_headers.append(wire.header(snapshot.selected_backend_header, backend.name))
        remove = [n for n in self._prepared.strip_names if n != snapshot.selected_backend_header]
        return wire.request_body_response(
            set_headers=set_headers, remove=remove, body=body, metadata=_credential_metadata(credential)
        )

    def _route_to_pool(
        self, pool: Pool, parsed: ParsedBody, raw: bytes, *, model_name: str, rule: Rule | None
    ) -> bytes | Coroutine[Any, Any, bytes]:
        """Pick an endpoint of ``pool`` for the InferenceModel ``model_name``. When the picker refuses (no
        endpoint, or saturated and shedding this request) and ``rule`` names a fallback for the pool, the
        request goes there instead; a fallback is reached with ``rule`` None, so fallbacks never chain."""
        model = pool.model_for(model_name, objective=self._headers.get(hdr.OBJECTIVE_HEADER))
        if model is None:
            return self._reject(
                404,
                "model_not_found",
                errors.NOT_FOUND,
                "model_not_found",
                f"model {errors.quoted(model_name)} has no InferenceModel in pool {pool.name}",
            )
        target = model.targets.pick(rng=self._deps.rng) if model.targets is not None else model_name
        if pool.external is not None:
            return self._via_external_picker(pool, pool.external, model, parsed, raw, target=target)
        return self._pick(pool, model, parsed, raw, target=target, rule=rule)

    def _pick(
        self, pool: Pool, model: PoolModel, parsed: ParsedBody, raw: bytes, *, target: str, rule: Rule | None
    ) -> bytes | Coroutine[Any, Any, bytes]:
        """Our picker's endpoint of ``pool`` (or, when it refuses, the rule's fallback or an error)."""
        try:
            endpoint = self._deps.picker.pick(
                PickRequest(
                    pool=pool,
                    model=model,
                    target_model=target,
                    headers=self._headers,
                    body_size=len(raw),
                    document=parsed.document,
                )
            )
        except PickRefusedError as e:
            fallback = rule.fallbacks.get(pool.name) if rule is not None else None
            if fallback is not None and rule is not None:
                return self._fall_back(rule, pool, fallback, parsed, raw, refused=e)
            if e.status == 429:
                self._deps.metrics.shed.labels(pool.name, model.name, model.criticality.value).inc()
                return self._reject(
                    429,
                    "unavailable",
                    errors.RATE_LIMITED,
                    "pool_saturated",
                    e.message,
                    retry_after=e.retry_after,
                )
            return self._reject(e.status, "unavailable", errors.UNAVAILABLE, str(e.status), e.message)
        body = with_model(parsed, target) if target != parsed.model else None
        return self._to_endpoint(
            endpoint.address, endpoint.hostname, endpoint.member, parsed, raw, target=target, body=body
        )

    async def _via_external_picker(
        self, pool: Pool, epp: EppTarget, model: PoolModel, parsed: ParsedBody, raw: bytes, *, target: str
    ) -> bytes:
        """The endpoint the pool's external endpoint picker chooses; when it fails, ours (FailOpen) or 503
        ``endpoint_picker_unavailable`` (FailClose)."""
        body = with_model(parsed, target) if target != parsed.model else None
        try:
            session = await self._deps.epp.start(epp, headers=self._headers, body=body or raw)
        except EppUnavailableError as e:
            mode = (FailureMode.FAIL_OPEN if epp.fail_open else FailureMode.FAIL_CLOSE).value
            self._deps.metrics.epp_failures.labels(pool.name, mode).inc()
            _warn_epp_failure(pool.name, f"{e} ({mode})")
            if epp.fail_open:
                out = self._pick(pool, model, parsed, raw, target=target, rule=None)
                return out if isinstance(out, bytes) else await out
            return self._reject(
                503,
                "unavailable",
                errors.UNAVAILABLE,
                "endpoint_picker_unavailable",
                f"the endpoint picker of InferencePool {pool.name} is unavailable",
            )
        self._epp = session
        decision = session.decision
        if decision.status:
            type_ = errors.RATE_LIMITED if decision.status == 429 else errors.UNAVAILABLE
            if 400 <= decision.status < 500 and decision.status != 429:
                type_ = errors.NOT_FOUND if decision.status == 404 else errors.INVALID_REQUEST
            message = decision.message or f"the endpoint picker answered {decision.status}"
            return self._reject(
                decision.status, "unavailable", type_, "endpoint_picker", f"{pool.name}: {message}"
            )
        member = pool.members[0] if pool.members else None
        if member is None:
            return self._reject(
                503, "unavailable", errors.UNAVAILABLE, "503", f"pool {pool.name} has no member"
            )
        return self._to_endpoint(
            decision.endpoint,
            None,
            member,
            parsed,
            raw,
            target=target,
            body=decision.body if decision.body is not None else body,
            picked_by_epp=True,
        )

    def _to_endpoint(
        self,
        address: str,
        hostname: str | None,
        member: Upstream,
        parsed: ParsedBody,
        raw: bytes,
        *,
        target: str,
        body: bytes | None,
        picked_by_epp: bool = False,
    ) -> bytes:
        """Send the request to pool endpoint ``address`` (a ``member``'s) through the ORIGINAL_DST cluster.
        An external picker's choice also goes upstream as ``x-gateway-destination-endpoint``, as the endpoint
        picker protocol's proxy sends it (a client's own value never survives: it is removed otherwise)."""
        snapshot = self._prepared.snapshot
        try:
            upstream_headers, body, credential = self._upstream_request(
                member, parsed, model=target, raw=raw, body=body
            )
        except TranslationError as e:
            return self._reject(400, "bad_request", errors.INVALID_REQUEST, "unsupported_request", str(e))
        self._lease = self._deps.signals.begin(address)
        set_headers = [
            wire.header(snapshot.selected_backend_header, hdr.ORIGINAL_DST_CLUSTER),
            wire.header(snapshot.original_dst_header, address),
        ]
        if hostname:
            set_headers.append(wire.header(":authority", hostname))
        kept = [snapshot.selected_backend_header, snapshot.original_dst_header]
        if picked_by_epp:
            set_headers.append(wire.header(hdr.GATEWAY_DESTINATION_ENDPOINT_HEADER, address))
            kept.append(hdr.GATEWAY_DESTINATION_ENDPOINT_HEADER)
        set_headers.extend(upstream_headers)  # last: a signature's :authority wins over the hostname
        remove = [n for n in self._prepared.strip_names if n not in kept]
        return wire.request_body_response(
            set_headers=set_headers, remove=remove, body=body, metadata=_credential_metadata(credential)
        )

    def _fall_back(
        self,
        rule: Rule,
        pool: Pool,
        fallback: Fallback,
        parsed: ParsedBody,
        raw: bytes,
        *,
        refused: PickRefusedError,
    ) -> bytes | Coroutine[Any, Any, bytes]:
        """Serve from ``fallback`` a request ``pool``'s picker refused: the picker's own decision (no
        endpoint, or saturated past what this request's criticality tolerates) is what engages it."""
        reason = "saturated" if refused.status == 429 else "no_endpoint"
        self._deps.metrics.fallbacks.labels(rule.route, pool.name, reason).inc()
        model = fallback.model or parsed.model
        if isinstance(fallback.target, Pool):
            return self._route_to_pool(fallback.target, parsed, raw, model_name=model, rule=None)
        return self._route_to_backend(fallback.target, parsed, raw, model=model)

    def _method_not_allowed(self, path: str, method: str, allowed: tuple[str, ...]) -> bytes:
        """405 with ``Allow``, as OpenAI answers a known path asked with the wrong method."""
        allow = ", ".join(allowed)
        return self._reject(
            405,
            "bad_request",
            errors.INVALID_REQUEST,
            "method_not_allowed",
            f"method {method!r} is not allowed on {path}; use {allow}",
            extra_headers=(("allow", allow),),
        )

    def _reject(
        self,
        status: int,
        outcome: str,
        type_: str,
        code: str,
        message: str,
        *,
        retry_after: int | None = None,
        extra_headers: tuple[tuple[str, str], ...] = (),
    ) -> bytes:
        self._outcome = outcome
        log.debug("rejected %s %s: %s", status, code, message)
        headers = [wire.JSON_CONTENT_TYPE, *extra_headers]
        if retry_after is not None:
            headers.append(("retry-after", str(retry_after)))
        return wire.immediate(
            status=status, body=errors.error_body(message=message, type_=type_, code=code), headers=headers
        )

    # -- response ---------------------------------------------------------------------------------

    def _on_response_headers(self, msg: Any) -> bytes:
        if self._epp is not None:
            self._epp.forward_response_headers(
                ((h.key, _header_value(h)) for h in msg.headers.headers), end_of_stream=msg.end_of_stream
            )
        json_answer = False
        for h in msg.headers.headers:
            if h.key == ":status":
                try:
                    self._status = int(_header_value(h))
                except ValueError:
                    self._status = 0
            elif h.key == "content-type":
                json_answer = _header_value(h).lower().startswith("application/json")
            if self._translator is not None and h.key != ":status":
                self._response_headers[h.key] = _header_value(h)
        ok = 200 <= self._status < 300
        self._response_ended = msg.end_of_stream
        if self._rule is None and self._outcome is None:
            # never routed, yet a response: Envoy answered by itself (e.g. 413 over its buffer limit)
            self._outcome = "ok" if ok else "bad_request" if self._status < 500 else "unavailable"
            self._local_reply = not ok
        else:
            self._outcome = "ok" if ok else "upstream_error"
        if msg.end_of_stream:
            self._end_lease()
            return wire.RESPONSE_HEADERS_CONTINUE
        if self._translator is not None:
            self._translator.on_headers(self._response_headers)
            if ok and self._translator.stream is not None:
                return wire.RESPONSE_HEADERS_STREAM_TRANSLATED
        elif ok and self._stream and not json_answer:  # a server that ignores "stream" answers one JSON body
            self._sse = SSEUsageParser()
            return wire.RESPONSE_HEADERS_STREAM_BODY
        if self._lease is not None:
            self._lease.first_byte()  # a buffered answer starts when its headers arrive
        return wire.RESPONSE_HEADERS_CONTINUE

    def _on_response_body(self, msg: Any) -> bytes:
        body: bytes = msg.body
        self._response_ended = msg.end_of_stream
        if self._epp is not None:
            self._epp.forward_response_body(body, end_of_stream=msg.end_of_stream)
        if self._translator is not None and not self._local_reply:
            return self._translated_body(self._translator, body, end_of_stream=msg.end_of_stream)
        if self._sse is not None:
            if not self._first_chunk_at and body:
                self._first_chunk_at = time.perf_counter()
                if self._lease is not None:
                    self._lease.first_byte()
            self._sse.feed(body)
            if not msg.end_of_stream:
                return wire.RESPONSE_BODY_CONTINUE
            self._end_lease()
            self._usage = self._sse.usage
            return self._finish_response()
        if msg.end_of_stream:
            self._end_lease()
        if self._outcome == "upstream_error" or self._local_reply:
            normalize = errors.normalize_local_reply if self._local_reply else errors.normalize_upstream_error
            replacement = normalize(status=self._status, body=body)
            if replacement is not None:
                return wire.response_body_response(
                    body=replacement,
                    set_headers=(wire.JSON_CONTENT_TYPE, ("content-length", str(len(replacement)))),
                    remove=("content-encoding",),  # ours is plain JSON, whatever the upstream's was
                )
            return wire.RESPONSE_BODY_CONTINUE
        if not msg.end_of_stream:
            return wire.RESPONSE_BODY_CONTINUE
        self._usage = usage_from_json(body)
        return self._finish_response()

    def _translated_body(self, translator: BedrockResponse, body: bytes, *, end_of_stream: bool) -> bytes:
        """Replace the upstream's body (each chunk of a stream, or the whole buffered body) with OpenAI's."""
        stream = translator.stream
        if stream is not None and self._outcome == "ok":
            if not self._first_chunk_at and body:
                self._first_chunk_at = time.perf_counter()
                if self._lease is not None:
                    self._lease.first_byte()
            out = stream.feed(body, end_of_stream=end_of_stream)
            if not end_of_stream:
                return wire.response_body_response(body=out)
            self._end_lease()
            self._usage = stream.usage
            return wire.response_body_response(body=out, metadata=self._cost_metadata())
        if not end_of_stream:
            return wire.RESPONSE_BODY_CONTINUE
        self._end_lease()
        status = self._status
        if self._outcome == "ok":
            try:
                out, self._usage = translator.complete(body)
            except TranslationError as e:
                self._outcome, status = "upstream_error", 502
                out = errors.error_body(message=str(e), type_=errors.UPSTREAM, code="502")
        else:
            out = translator.error(status=status, body=body)
        set_headers = [wire.JSON_CONTENT_TYPE, ("content-length", str(len(out)))]
        if status != self._status:
            set_headers.append((":status", str(status)))
        return wire.response_body_response(body=out, set_headers=set_headers, metadata=self._cost_metadata())

    def _cost_metadata(self) -> dict[str, dict[str, float]] | None:
        usage, rule = self._usage, self._rule
        if usage is None or rule is None or not rule.costs:
            return None
        values = cost_values(
            rule.costs,
            usage,
            model=self._model,
            backend=self._backend,
            on_failure=lambda c, reason: self._deps.metrics.cost_failures.labels(
                c.route, c.metadata_key, reason
            ).inc(),
        )
        return {self._prepared.snapshot.metadata_namespace: values} if values else None

    def _finish_response(self) -> bytes:
        metadata = self._cost_metadata()
        if metadata is None:
            return wire.RESPONSE_BODY_CONTINUE
        return wire.response_body_response(metadata=metadata)

    # -- end --------------------------------------------------------------------------------------

    def _end_lease(self) -> None:
        if self._lease is not None:
            self._lease.end(status=self._status)

    def finish(self) -> None:
        """Record this request's metrics and release its endpoint. Call once, when the ext_proc stream ends
        (normally or not: an error, a client that went away or a stream reset all end here)."""
        if self._lease is not None:
            self._lease.end(status=0)  # no-op when the response already ended it
        if self._epp is not None:
            self._epp.close()
        m = self._deps.metrics
        outcome = self._outcome or "cancelled"
        if outcome == "ok" and self._rule is not None and not self._response_ended:
            outcome = "cancelled"  # the answer began but never ended: the client left or the stream broke
        m.requests.labels(outcome).inc()
        if not self._operation or not self._model:
            return
        if self._rule is None:  # never routed: the model may be any client string, keep it out of labels
            return
        rm = m.for_request(operation=self._operation, provider=self._provider or "unknown", model=self._model)
        now = time.perf_counter()
        (rm.duration_ok if outcome == "ok" else rm.duration(outcome)).observe(now - self._started)
        usage = self._usage
        if usage is not None:
            rm.tokens["input"].observe(usage.input_tokens)
            rm.tokens["output"].observe(usage.output_tokens)
            rm.tokens["total"].observe(usage.total_tokens)
        if self._first_chunk_at:
            rm.ttft.observe(self._first_chunk_at - self._started)
            chunks = self._sse.events if self._sse else 0
            if self._translator is not None and self._translator.stream is not None:
                chunks = self._translator.stream.chunks
            out_tokens = usage.output_tokens if usage is not None else chunks
            if out_tokens > 1:
                rm.tpot.observe((now - self._first_chunk_at) / (out_tokens - 1))
