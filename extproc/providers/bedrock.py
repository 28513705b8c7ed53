"""OpenAI chat completions <-> AWS Bedrock Converse: pure translation of requests, responses and errors.

Request: an OpenAI ``/v1/chat/completions`` body becomes a Converse body for ``/model/{modelId}/converse``
(or ``/converse-stream``). Response: a Converse JSON body becomes a ``chat.completion``; the stream's events
become ``chat.completion.chunk`` SSE events (``bedrock_stream.ConverseStream``). Nothing here does I/O.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import quote

import orjson

from extproc.usage import Usage

FINISH_REASONS: Final[Mapping[str, str]] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "content_filtered": "content_filter",
    "guardrail_intervened": "content_filter",
}
"""Converse ``stopReason`` -> OpenAI ``finish_reason``; anything else becomes ``stop``."""

_DATA_URI = re.compile(r"data:image/(?P<format>png|jpeg|jpg|gif|webp);base64,(?P<data>.*)", re.DOTALL)


class TranslationError(Exception):
    """The OpenAI request cannot be expressed as a Converse request; the message is safe for the client."""


def converse_path(*, model: str, stream: bool) -> str:
    """``/model/{modelId}/converse[-stream]``; the model id is percent-encoded (ids contain ``:``)."""
    return f"/model/{quote(model, safe='')}/{'converse-stream' if stream else 'converse'}"


def _text_of(content: Any, *, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if (
                not isinstance(part, dict)
                or part.get("type") != "text"
                or not isinstance(part.get("text"), str)
            ):
                raise TranslationError(f"{where}: only text parts are allowed here")
            texts.append(part["text"])
        return "".join(texts)
    if content is None:
        return ""
    raise TranslationError(f"{where}: content must be a string or a list of parts")


def _image_block(part: Mapping[str, Any], *, where: str) -> dict[str, Any]:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise TranslationError(f"{where}: image_url.url must be a string")
    m = _DATA_URI.fullmatch(url)
    if m is None:
        raise TranslationError(
            f"{where}: Bedrock takes images only as data URIs (data:image/png|jpeg|gif|webp;base64,...)"
        )
    data = m.group("data")
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise TranslationError(f"{where}: the image data URI is not valid base64") from None
    fmt = "jpeg" if m.group("format") == "jpg" else m.group("format")
    # the JSON form of a Converse blob is its base64 text
    return {"image": {"format": fmt, "source": {"bytes": data}}}


def _user_content(content: Any, *, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}]
    if not isinstance(content, list):
        raise TranslationError(f"{where}: content must be a string or a list of parts")
    blocks: list[dict[str, Any]] = []
    for k, part in enumerate(content):
        here = f"{where}.content[{k}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            blocks.append({"text": part["text"]})
        elif kind == "image_url":
            blocks.append(_image_block(part, where=here))
        else:
            raise TranslationError(f"{here}: unsupported part type {kind!r}")
    return blocks


def _tool_use(call: Any, *, where: str) -> dict[str, Any]:
    fn = call.get("function") if isinstance(call, dict) else None
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not isinstance(call.get("id"), str):
        raise TranslationError(f"{where}: a tool call needs an id and a function name")
    arguments = fn.get("arguments") or "{}"
    try:
        parsed = orjson.loads(arguments) if isinstance(arguments, str) else arguments
    except orjson.JSONDecodeError:
        raise TranslationError(f"{where}: function.arguments is not valid JSON") from None
    return {"toolUse": {"toolUseId": call["id"], "name": fn["name"], "input": parsed}}


def _messages(messages: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(system, messages)``; consecutive messages of one Converse role are merged (Converse alternates)."""
    if not isinstance(messages, list) or not messages:
        raise TranslationError("'messages' must be a non-empty list")
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})

    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise TranslationError(f"{where}: must be an object")
        role, content = msg.get("role"), msg.get("content")
        if role in ("system", "developer"):
            system.append({"text": _text_of(content, where=where)})
        elif role == "user":
            add("user", _user_content(content, where=where))
        elif role == "assistant":
            blocks: list[dict[str, Any]] = []
            text = _text_of(content, where=where)
            if text:
                blocks.append({"text": text})
            calls = msg.get("tool_calls") or []
            if not isinstance(calls, list):
                raise TranslationError(f"{where}: tool_calls must be a list")
            blocks.extend(_tool_use(c, where=f"{where}.tool_calls[{j}]") for j, c in enumerate(calls))
            if not blocks:
                raise TranslationError(f"{where}: an assistant message needs content or tool_calls")
            add("assistant", blocks)
        elif role == "tool":
            call_id = msg.get("tool_call_id")
            if not isinstance(call_id, str):
                raise TranslationError(f"{where}: a tool message needs tool_call_id")
            result = {"toolUseId": call_id, "content": [{"text": _text_of(content, where=where)}]}
            add("user", [{"toolResult": result}])
        else:
            raise TranslationError(f"{where}: unsupported role {role!r}")
    return system, out


def _tool_config(tools: Any, choice: Any) -> dict[str, Any] | None:
    if not tools:
        return None
    if not isinstance(tools, list):
        raise TranslationError("'tools' must be a list")
    specs = []
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise TranslationError(f"tools[{i}]: only function tools with a name are supported")
        spec: dict[str, Any] = {
            "name": fn["name"],
            "inputSchema": {"json": fn.get("parameters") or {"type": "object", "properties": {}}},
        }
        if isinstance(fn.get("description"), str):
            spec["description"] = fn["description"]
        specs.append({"toolSpec": spec})
    config: dict[str, Any] = {"tools": specs}
    if choice in (None, "none"):
        # Converse has no "none": without toolChoice the model decides, as with "auto"
        return config
    if choice == "auto":
        config["toolChoice"] = {"auto": {}}
    elif choice == "required":
        config["toolChoice"] = {"any": {}}
    elif isinstance(choice, dict) and isinstance((choice.get("function") or {}).get("name"), str):
        config["toolChoice"] = {"tool": {"name": choice["function"]["name"]}}
    else:
        raise TranslationError("'tool_choice' must be none, auto, required or a named function")
    return config


def _inference_config(doc: Mapping[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    max_tokens = doc.get("max_completion_tokens", doc.get("max_tokens"))
    if max_tokens is not None:
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise TranslationError("'max_tokens' must be a positive integer")
        config["maxTokens"] = max_tokens
    for src, dst in (("temperature", "temperature"), ("top_p", "topP")):
        value = doc.get(src)
        if value is not None:
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise TranslationError(f"'{src}' must be a number")
            config[dst] = value
    stop = doc.get("stop")
    if isinstance(stop, str):
        config["stopSequences"] = [stop]
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        if stop:
            config["stopSequences"] = stop
    elif stop is not None:
        raise TranslationError("'stop' must be a string or a list of strings")
    return config


def converse_request(doc: Mapping[str, Any]) -> bytes:
    """The Converse body for the OpenAI chat request ``doc``. Raises TranslationError."""
    system, messages = _messages(doc.get("messages"))
    body: dict[str, Any] = {"messages": messages}
    if system:
        body["system"] = system
    inference = _inference_config(doc)
    if inference:
        body["inferenceConfig"] = inference
    tools = _tool_config(doc.get("tools"), doc.get("tool_choice"))
    if tools is not None:
        body["toolConfig"] = tools
    return orjson.dumps(body)


def usage_of(obj: Any) -> Usage | None:
    """A Converse ``usage`` object (``inputTokens``/``outputTokens``/``totalTokens``) as Usage."""
    if not isinstance(obj, dict):
        return None
    values = [obj.get(k) for k in ("inputTokens", "outputTokens", "totalTokens")]
    inp, out, total = (v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else 0 for v in values)
    return Usage(input_tokens=inp, output_tokens=out, total_tokens=total or inp + out)


def openai_usage(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }


def chat_completion(body: bytes, *, model: str, id_: str, created: int) -> tuple[bytes, Usage | None]:
    """The OpenAI ``chat.completion`` for a Converse response body, and its usage.

    Raises TranslationError when the body is not a Converse response."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise TranslationError("the Bedrock response is not JSON") from None
    message = ((doc.get("output") or {}).get("message") or {}) if isinstance(doc, dict) else {}
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, list):
        raise TranslationError("the Bedrock response has no output.message.content")
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif isinstance(block.get("toolUse"), dict):
            use = block["toolUse"]
            calls.append(
                {
                    "id": use.get("toolUseId", ""),
                    "type": "function",
                    "function": {
                        "name": use.get("name", ""),
                        "arguments": orjson.dumps(use.get("input", {})).decode(),
                    },
                }
            )
    out_message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        out_message["tool_calls"] = calls
    usage = usage_of(doc.get("usage"))
    result: dict[str, Any] = {
        "id": id_,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": out_message,
                "finish_reason": FINISH_REASONS.get(str(doc.get("stopReason")), "stop"),
            }
        ],
    }
    if usage is not None:
        result["usage"] = openai_usage(usage)
    return orjson.dumps(result), usage


def error_type(errortype_header: str | None, *, fallback: str = "AWSBedrockBackendError") -> str:
    """The error type from ``x-amzn-errortype``: ``ValidationException:http://...`` gives
    ``ValidationException``."""
    if not errortype_header:
        return fallback
    return errortype_header.split(":", 1)[0].strip() or fallback


def error_message(body: bytes, *, status: int) -> str:
    """The ``message`` (or ``Message``) of a Bedrock JSON error body, else the raw body as text."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, dict):
        for key in ("message", "Message"):
            if isinstance(doc.get(key), str):
                return str(doc[key])
    text = body.decode("utf-8", "replace").strip()
    return text or f"Bedrock answered with status {status}"
