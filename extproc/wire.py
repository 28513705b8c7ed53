"""Builders of ext_proc protobuf responses, and the constant ones pre-serialized once."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from envoy.config.core.v3 import base_pb2 as core
from envoy.extensions.filters.http.ext_proc.v3 import processing_mode_pb2 as pm
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from envoy.type.v3 import http_status_pb2

_OVERWRITE: Final = core.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
JSON_CONTENT_TYPE: Final = ("content-type", "application/json")


def _serialize(message: Any) -> bytes:
    data: bytes = message.SerializeToString()
    return data


def header(name: str, value: str) -> core.HeaderValueOption:
    """A header mutation that replaces (or adds) ``name`` with ``value``, sent as ``raw_value``."""
    return core.HeaderValueOption(
        header=core.HeaderValue(key=name, raw_value=value.encode()), append_action=_OVERWRITE
    )


def mutation(*, set_: Iterable[tuple[str, str]] = (), remove: Iterable[str] = ()) -> ep.HeaderMutation:
    return ep.HeaderMutation(set_headers=[header(k, v) for k, v in set_], remove_headers=list(remove))


def immediate(
    *, status: int, body: bytes, headers: Iterable[tuple[str, str]] = (JSON_CONTENT_TYPE,)
) -> bytes:
    """A serialized ImmediateResponse: Envoy answers the client with it and never contacts an upstream."""
    return _serialize(
        ep.ProcessingResponse(
            immediate_response=ep.ImmediateResponse(
                status=http_status_pb2.HttpStatus(code=status),
                headers=mutation(set_=headers),
                body=body,
            )
        )
    )


def request_headers_response(*, remove: Iterable[str]) -> bytes:
    """Continue, with the client's routing headers removed."""
    common = ep.CommonResponse(header_mutation=ep.HeaderMutation(remove_headers=list(remove)))
    return _serialize(ep.ProcessingResponse(request_headers=ep.HeadersResponse(response=common)))


def _set_metadata(resp: ep.ProcessingResponse, metadata: Mapping[str, Mapping[str, float | str]]) -> None:
    fields = resp.dynamic_metadata.fields
    for ns, values in metadata.items():
        inner = fields[ns].struct_value.fields
        for key, value in values.items():
            if isinstance(value, str):
                inner[key].string_value = value
            else:
                inner[key].number_value = value


def request_body_response(
    *,
    set_headers: list[core.HeaderValueOption],
    remove: Iterable[str],
    body: bytes | None,
    metadata: Mapping[str, Mapping[str, str]] | None = None,
) -> bytes:
    """Route the request: header mutations, an optional new body, a cleared route cache, and optionally
    dynamic metadata ``{namespace: {key: value}}`` (set before Envoy's router runs)."""
    common = ep.CommonResponse(
        header_mutation=ep.HeaderMutation(set_headers=set_headers, remove_headers=list(remove)),
        clear_route_cache=True,
    )
    if body is not None:
        common.body_mutation.body = body
    resp = ep.ProcessingResponse(request_body=ep.BodyResponse(response=common))
    if metadata:
        _set_metadata(resp, metadata)
    return _serialize(resp)


def response_body_response(
    *,
    body: bytes | None = None,
    set_headers: Iterable[tuple[str, str]] = (),
    remove: Iterable[str] = (),
    metadata: Mapping[str, Mapping[str, float]] | None = None,
) -> bytes:
    """Pass or replace the response body; optionally attach dynamic metadata ``{namespace: {key: value}}``."""
    resp = ep.ProcessingResponse(response_body=ep.BodyResponse())
    common = resp.response_body.response
    if body is not None:
        common.body_mutation.body = body
        common.header_mutation.CopyFrom(mutation(set_=set_headers, remove=remove))
    if metadata:
        _set_metadata(resp, metadata)
    return _serialize(resp)


REQUEST_BODY_CONTINUE: Final[bytes] = ep.ProcessingResponse(
    request_body=ep.BodyResponse()
).SerializeToString()
RESPONSE_HEADERS_CONTINUE: Final[bytes] = ep.ProcessingResponse(
    response_headers=ep.HeadersResponse()
).SerializeToString()
RESPONSE_HEADERS_STREAM_BODY: Final[bytes] = ep.ProcessingResponse(
    response_headers=ep.HeadersResponse(),
    mode_override=pm.ProcessingMode(response_body_mode=pm.ProcessingMode.STREAMED),
).SerializeToString()
"""Continue, and receive the response body chunk by chunk (SSE) instead of buffered."""
RESPONSE_HEADERS_STREAM_TRANSLATED: Final[bytes] = ep.ProcessingResponse(
    response_headers=ep.HeadersResponse(
        response=ep.CommonResponse(
            header_mutation=mutation(set_=[("content-type", "text/event-stream")], remove=["content-length"])
        )
    ),
    mode_override=pm.ProcessingMode(response_body_mode=pm.ProcessingMode.STREAMED),
).SerializeToString()
"""Stream the body chunk by chunk, re-framed as SSE by the ext_proc (a translated provider stream)."""
RESPONSE_HEADERS_SKIP_BODY: Final[bytes] = ep.ProcessingResponse(
    response_headers=ep.HeadersResponse(),
    mode_override=pm.ProcessingMode(response_body_mode=pm.ProcessingMode.NONE),
).SerializeToString()
RESPONSE_BODY_CONTINUE: Final[bytes] = ep.ProcessingResponse(
    response_body=ep.BodyResponse()
).SerializeToString()
REQUEST_TRAILERS_CONTINUE: Final[bytes] = ep.ProcessingResponse(
    request_trailers=ep.TrailersResponse()
).SerializeToString()
RESPONSE_TRAILERS_CONTINUE: Final[bytes] = ep.ProcessingResponse(
    response_trailers=ep.TrailersResponse()
).SerializeToString()
