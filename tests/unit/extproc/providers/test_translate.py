"""The per-request edits for each upstream schema."""

from __future__ import annotations

import pytest

from api import filterconfig as fc
from extproc.snapshot import Upstream
from extproc.translate import TranslationError, edit_request


def _upstream(schema: fc.APISchemaName, version: str | None = None) -> Upstream:
    return Upstream(
        name="b.ns", schema=schema, schema_version=version, provider="x", auth_header=("api-key", "k")
    )


def _edit(upstream: Upstream, operation: str = "chat", model: str = "m", stream: bool = False):  # type: ignore[no-untyped-def]
    doc = {"model": "client", "messages": [{"role": "user", "content": "hi"}]}
    return edit_request(
        upstream=upstream, operation=operation, document=doc, model=model, stream=stream,
        client_model="client", id_="id", created=1,
    )  # fmt: skip


def test_bedrock_asks_for_an_unencoded_answer_and_keeps_the_credential_header() -> None:
    edit = _edit(_upstream(fc.APISchemaName.AWS_BEDROCK), model="a.b:0", stream=True)
    assert edit.path == "/model/a.b%3A0/converse-stream"
    assert ("accept-encoding", "identity") in edit.headers and ("api-key", "k") in edit.headers
    assert edit.response is not None and edit.response.stream is not None


@pytest.mark.parametrize(
    ("operation", "suffix"),
    [("chat", "chat/completions"), ("completion", "completions"), ("embeddings", "embeddings")],
)
def test_azure_paths_keep_the_body(operation: str, suffix: str) -> None:
    edit = _edit(_upstream(fc.APISchemaName.AZURE_OPENAI, "2024-10-21"), operation=operation, model="dep/1")
    assert edit.path == f"/openai/deployments/dep%2F1/{suffix}?api-version=2024-10-21"
    assert edit.body is None and edit.response is None


def test_openai_is_untouched_and_bedrock_refuses_other_operations() -> None:
    edit = _edit(_upstream(fc.APISchemaName.OPENAI))
    assert (edit.path, edit.body, edit.response) == (None, None, None)
    with pytest.raises(TranslationError, match="only /v1/chat/completions"):
        _edit(_upstream(fc.APISchemaName.AWS_BEDROCK), operation="embeddings")
