"""The inputs of the Bedrock golden corpus; ``python -m tests.unit.extproc.providers.corpus`` writes any case
whose file is missing (its expected output from the current code; read it before committing it)."""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Any

import orjson

GOLDEN = Path(__file__).with_name("golden")
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n fake image bytes").decode()

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}

REQUESTS: dict[str, dict[str, Any]] = {
    "request-system-user-params": {
        "model": "anthropic.claude-3-5-sonnet-20240620-v1:0",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Hello!"},
        ],
        "temperature": 0.2,
        "top_p": 0.9,
        "max_tokens": 256,
        "stop": "END",
    },
    "request-multi-turn": {
        "model": "amazon.nova-lite-v1:0",
        "messages": [
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Bonjour"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "How are "}, {"type": "text", "text": "you?"}],
            },
            {"role": "user", "content": "And the weather?"},
        ],
        "max_completion_tokens": 64,
        "stop": ["\n\n", "END"],
    },
    "request-tools": {
        "model": "anthropic.claude-3-haiku-20240307-v1:0",
        "messages": [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18C, sunny"},
            {"role": "tool", "tool_call_id": "call_2", "content": "24C, clouds"},
        ],
        "tools": [WEATHER_TOOL],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    },
    "request-tool-choice-required": {
        "model": "m",
        "messages": [{"role": "user", "content": "Weather?"}],
        "tools": [WEATHER_TOOL],
        "tool_choice": "required",
    },
    "request-image": {
        "model": "anthropic.claude-3-5-sonnet-20240620-v1:0",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this picture?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                    {"type": "image_url", "image_url": {"url": f"data:image/jpg;base64,{PNG}"}},
                ],
            }
        ],
    },
    "request-stream": {
        "model": "meta.llama3-8b-instruct-v1:0",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "Count to 3"}],
    },
}

BAD_REQUESTS: dict[str, dict[str, Any]] = {
    "bad-request-image-url": {
        "model": "m",
        "messages": [
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}],
            }
        ],
    },
    "bad-request-tool-arguments": {
        "model": "m",
        "messages": [
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}
                ],
            }
        ],
    },
    "bad-request-role": {"model": "m", "messages": [{"role": "wizard", "content": "hi"}]},
    "bad-request-no-messages": {"model": "m", "messages": []},
}

RESPONSES: dict[str, dict[str, Any]] = {
    "response-text": {
        "output": {"message": {"role": "assistant", "content": [{"text": "Hello"}, {"text": " there"}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 12, "outputTokens": 3, "totalTokens": 15},
        "metrics": {"latencyMs": 120},
    },
    "response-tool-use": {
        "output": {
            "message": {
                "role": "assistant",
                "content": [
                    {"text": "Let me check."},
                    {
                        "toolUse": {
                            "toolUseId": "tooluse_1",
                            "name": "get_weather",
                            "input": {"city": "Paris"},
                        }
                    },
                ],
            }
        },
        "stopReason": "tool_use",
        "usage": {"inputTokens": 40, "outputTokens": 20, "totalTokens": 60},
    },
    "response-max-tokens": {
        "output": {"message": {"role": "assistant", "content": [{"text": "Once upon"}]}},
        "stopReason": "max_tokens",
        "usage": {"inputTokens": 5, "outputTokens": 2, "totalTokens": 7},
    },
}

ERRORS: dict[str, dict[str, Any]] = {
    "error-validation": {
        "status": 400,
        "errortype": "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/",
        "body": '{"message":"The provided model identifier is invalid."}',
    },
    "error-throttling": {
        "status": 429,
        "errortype": "ThrottlingException",
        "body": '{"Message":"Too many requests"}',
    },
    "error-not-json": {"status": 503, "errortype": None, "body": "upstream connect error"},
}


def _ev(event: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {"event": event, "payload": payload}


STREAMS: dict[str, dict[str, Any]] = {
    "stream-text": {
        "frames": [
            _ev("messageStart", {"role": "assistant"}),
            _ev("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "1, 2"}}),
            _ev("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": ", 3"}}),
            _ev("contentBlockStop", {"contentBlockIndex": 0}),
            _ev("messageStop", {"stopReason": "end_turn"}),
            _ev(
                "metadata",
                {
                    "usage": {"inputTokens": 9, "outputTokens": 5, "totalTokens": 14},
                    "metrics": {"latencyMs": 80},
                },
            ),
        ],
    },
    "stream-tool-use": {
        "frames": [
            _ev("messageStart", {"role": "assistant"}),
            _ev("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Checking."}}),
            _ev("contentBlockStop", {"contentBlockIndex": 0}),
            _ev(
                "contentBlockStart",
                {"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "tu_1", "name": "get_weather"}}},
            ),
            _ev("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '{"city":'}}}),
            _ev("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '"Paris"}'}}}),
            _ev("contentBlockStop", {"contentBlockIndex": 1}),
            _ev("messageStop", {"stopReason": "tool_use"}),
            _ev("metadata", {"usage": {"inputTokens": 30, "outputTokens": 12, "totalTokens": 42}}),
        ],
    },
    "stream-exception": {
        "frames": [
            _ev("messageStart", {"role": "assistant"}),
            _ev("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hel"}}),
            {"exception": "throttlingException", "payload": {"message": "Rate exceeded"}},
            _ev("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "never sent"}}),
        ],
    },
    "stream-bad-crc": {
        "frames": [
            _ev("messageStart", {"role": "assistant"}),
            {
                **_ev("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "corrupt"}}),
                "corrupt": True,
            },
            _ev("messageStop", {"stopReason": "end_turn"}),
        ],
    },
    "stream-truncated": {
        "frames": [
            _ev("messageStart", {"role": "assistant"}),
            _ev("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "cut"}}),
            {**_ev("messageStop", {"stopReason": "end_turn"}), "truncate": 10},
        ],
    },
}


def main() -> None:
    from tests.unit.extproc.providers.test_golden import expected_for

    GOLDEN.mkdir(exist_ok=True)
    for group in (REQUESTS, BAD_REQUESTS, RESPONSES, ERRORS, STREAMS):
        for name in group:
            path = GOLDEN / f"{name}.json"
            if path.exists():
                continue
            path.write_bytes(orjson.dumps(expected_for(name), option=orjson.OPT_INDENT_2) + b"\n")
            print("wrote", path, file=sys.stderr)


if __name__ == "__main__":
    main()
