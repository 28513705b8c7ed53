"""A bare ext_proc gRPC client, as any pod (or local process) could write one: it plays Envoy for one chat
request, to see what the ext_proc gives it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import orjson
from envoy.config.core.v3 import base_pb2 as core
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep

from api.headers import CREDENTIAL_METADATA_NAMESPACE

SERVICE_NAME = "envoy.service.ext_proc.v3.ExternalProcessor"


async def chat_for(channel: grpc.aio.Channel, model: str) -> list[ep.ProcessingResponse]:
    """Request headers then the body ``{"model": model}``; the ext_proc's answers (gRPC errors raise)."""
    process = channel.stream_stream(
        f"/{SERVICE_NAME}/Process",
        request_serializer=ep.ProcessingRequest.SerializeToString,
        response_deserializer=ep.ProcessingResponse.FromString,
    )

    async def messages() -> AsyncIterator[ep.ProcessingRequest]:
        hs = [(":path", "/v1/chat/completions"), (":method", "POST"), ("content-type", "application/json")]
        headers = core.HeaderMap(headers=[core.HeaderValue(key=k, raw_value=v.encode()) for k, v in hs])
        yield ep.ProcessingRequest(request_headers=ep.HttpHeaders(headers=headers))
        yield ep.ProcessingRequest(
            request_body=ep.HttpBody(body=orjson.dumps({"model": model}), end_of_stream=True)
        )

    return [a async for a in process(messages(), timeout=10)]


def authorization_set(answers: list[ep.ProcessingResponse]) -> list[bytes]:
    """The ``authorization`` values the ext_proc handed to Envoy: as a header to set, or (where it puts them)
    as credential metadata that our routes copy into the header."""
    out = [
        h.header.raw_value
        for a in answers
        for h in a.request_body.response.header_mutation.set_headers
        if h.header.key == "authorization"
    ]
    for a in answers:
        ns = a.dynamic_metadata.fields.get(CREDENTIAL_METADATA_NAMESPACE)
        if ns is not None and "authorization" in ns.struct_value.fields:
            out.append(ns.struct_value.fields["authorization"].string_value.encode())
    return out
