"""The simulator's tokenizer: deterministic, dependency-free, no download.

Text is split on whitespace, and each word is cut into chunks of at most 4 characters; each chunk is one
token. "Hello, world!" is 4 tokens (``Hell``, ``o,``, ``worl``, ``d!``). That is close to real BPE counts
for English (about 4 characters a token) and stable across runs, processes and machines.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

CHARS_PER_TOKEN = 4


def tokenize(text: str) -> list[str]:
    """The tokens of ``text``: each whitespace-separated word in chunks of up to 4 characters."""
    out: list[str] = []
    for word in text.split():
        out.extend(word[i : i + CHARS_PER_TOKEN] for i in range(0, len(word), CHARS_PER_TOKEN))
    return out


def chat_prompt_text(messages: Sequence[Any]) -> str:
    """The text a chat request's messages are tokenized as: ``<role>`` then the content, for each message.

    Content given as a list of parts contributes its ``text`` parts. Malformed messages raise ValueError.
    """
    lines: list[str] = []
    for m in messages:
        if not isinstance(m, dict):
            raise ValueError("each message must be an object")
        role = m.get("role")
        if not isinstance(role, str):
            raise ValueError("each message needs a string 'role'")
        content = m.get("content")
        if content is None:
            text = ""
        elif isinstance(content, str):
            text = content
        elif isinstance(content, list):
            text = " ".join(
                p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
            )
        else:
            raise ValueError("message 'content' must be a string or a list of parts")
        lines.append(f"<{role}> {text}")
    return "\n".join(lines)
