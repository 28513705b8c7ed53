"""Per request: the edits that turn an OpenAI request into the upstream's (``extproc.providers`` does the
work), and the way its answer returns.

``edit_request`` gives the path, body and credential header for the upstream's schema; ``signed`` adds SigV4
headers last, over the final path and body. ``BedrockResponse`` turns a Bedrock answer (JSON, event stream or
error) back into OpenAI's shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from api import filterconfig as fc
from extproc import errors
from extproc.providers import azure, bedrock
from extproc.providers.bedrock import TranslationError
from extproc.providers.bedrock_stream import ConverseStream
from extproc.snapshot import Upstream
from extproc.usage import Usage

__all__ = ["BedrockResponse", "RequestEdit", "TranslationError", "edit_request", "signed"]


class BedrockResponse:
    """How one Bedrock answer becomes OpenAI's: remember its headers, then translate its body."""

    __slots__ = ("_created", "_errortype", "_id", "_model", "stream")

    def __init__(self, *, model: str, stream: bool, id_: str, created: int) -> None:
        self._model = model
        self._id = id_
        self._created = created
        self._errortype: str | None = None
        self.stream = ConverseStream(model=model, id_=id_, created=created) if stream else None

    def on_headers(self, headers: dict[str, str]) -> None:
        self._errortype = headers.get("x-amzn-errortype")

    def complete(self, body: bytes) -> tuple[bytes, Usage | None]:
        """The ``chat.completion`` for a 2xx Converse body. Raises TranslationError."""
        return bedrock.chat_completion(body, model=self._model, id_=self._id, created=self._created)

    def error(self, *, status: int, body: bytes) -> bytes:
        """The OpenAI error for a non-2xx Bedrock answer: its type from ``x-amzn-errortype``, its message
        from the body."""
        return errors.error_body(
            message=bedrock.error_message(body, status=status),
            type_=bedrock.error_type(self._errortype),
            code=str(status),
        )


IDENTITY_ENCODING: Final = ("accept-encoding", "identity")
"""Set on every upstream request (see ``edit_request``)."""


@dataclass(frozen=True, slots=True)
class RequestEdit:
    path: str | None
    """The new ``:path``, or None to keep the client's."""
    body: bytes | None
    """The new body, or None to keep the one given to ``edit_request``."""
    headers: list[tuple[str, str]]
    """Headers to set (``accept-encoding: identity``, the credential header; never SigV4, see ``signed``)."""
    response: BedrockResponse | None


def edit_request(
    *,
    upstream: Upstream,
    operation: str,
    document: dict[str, object],
    model: str,
    stream: bool,
    client_model: str,
    id_: str,
    created: int,
) -> RequestEdit:
    """The edits for ``upstream``: ``model`` is the name the upstream knows (after any pool rewrite),
    ``client_model`` the one the client asked for (answers carry it). Raises TranslationError."""
    # the ext_proc reads usage from the answer and rewrites errors and Bedrock's answers, so the upstream must
    # answer uncompressed whatever the client accepts (hosted APIs gzip whenever Accept-Encoding allows it)
    headers = [IDENTITY_ENCODING]
    if upstream.auth_header is not None:
        headers.append(upstream.auth_header)
    if upstream.schema == fc.APISchemaName.AZURE_OPENAI:
        path = azure.deployment_path(
            operation=operation, deployment=model, api_version=upstream.schema_version
        )
        return RequestEdit(path=path, body=None, headers=headers, response=None)
    if upstream.schema == fc.APISchemaName.AWS_BEDROCK:
        if operation != "chat":
            raise TranslationError(
                f"backend {upstream.name} (AWSBedrock) serves only /v1/chat/completions, not {operation}"
            )
        return RequestEdit(
            path=bedrock.converse_path(model=model, stream=stream),
            body=bedrock.converse_request(document),
            headers=headers,
            response=BedrockResponse(model=client_model, stream=stream, id_=id_, created=created),
        )
    return RequestEdit(path=None, body=None, headers=headers, response=None)


def signed(upstream: Upstream, *, path: str, body: bytes) -> list[tuple[str, str]]:
    """SigV4 headers (and ``:authority``, which the signature covers) for the final request, or none."""
    signer = upstream.signer
    if signer is None:
        return []
    return [(":authority", signer.host), *signer.sign(method="POST", path=path, body=body)]
