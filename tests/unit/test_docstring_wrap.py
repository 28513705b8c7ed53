"""Docstrings read as prose: no line of one or two stray words inside a paragraph.

A re-wrap that went wrong once left lines like ``function.`` or ``and swap`` between two full lines, and list
continuations at column 0. This finds such a line: one or two words, after a line that reached the wrap width,
and either followed by more of the same paragraph or less indented than its list item's text.
"""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ROOTS = ("api", "controller", "extproc", "aigw", "tests", "bench", "hack")
FULL = 85
"""A line at least this long reached the wrap width (110) closely enough that the next word did not fit."""
ITEM = re.compile(r"^\s*(?:[-*]|\d+\.)\s+")


def _docstrings(source: str) -> list[tuple[int, list[str]]]:
    """(first line number, lines) of every module, class and function docstring."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            value = first.value if isinstance(first, ast.Expr) else None
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                out.append((first.lineno, source.splitlines()[first.lineno - 1 : first.end_lineno]))
    return out


def _ends_paragraph(line: str) -> bool:
    s = line.strip()
    return s in ("", '"""') or bool(ITEM.match(line)) or set(s) <= set("-=~")


def stray_lines(lines: list[str]) -> list[int]:
    """Indexes of stray short lines in one docstring's source lines."""
    out = []
    item_text_col = None
    for i, line in enumerate(lines):
        if m := ITEM.match(line):
            item_text_col = m.end()
        elif _ends_paragraph(line):
            item_text_col = None
        words = line.replace('"""', "").split()
        if i == 0 or i == len(lines) - 1 or not 1 <= len(words) <= 2 or ITEM.match(line):
            continue
        prev, nxt = lines[i - 1], lines[i + 1]
        if len(prev) < FULL:
            continue
        continues = '"""' not in line and not _ends_paragraph(nxt)
        indent = len(line) - len(line.lstrip())
        misindented = item_text_col is not None and indent < item_text_col
        if continues or misindented:
            out.append(i)
    return out


def test_the_checker_finds_a_stray_line_and_passes_good_prose() -> None:
    full = " ".join(["word"] * 20)
    assert stray_lines(['"""Title.', "", full, "and swap", full + ' end."""']) == [3]
    assert stray_lines(['"""Title.', "", f"- {full}", "function.", '- next."""']) == [3]
    assert stray_lines(['"""Title.', "", full, full, 'ends."""']) == []
    assert stray_lines(['"""Title.', "", f"- {full}", "  function.", '- next."""']) == []


def test_no_docstring_has_a_stray_line() -> None:
    files = subprocess.run(
        ["git", "ls-files", "--", *(f"{r}/*.py" for r in ROOTS)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert len(files) > 50, "git ls-files found too few files: is this a git checkout?"
    found = []
    for name in files:
        if "/_generated/" in name:
            continue
        for start, lines in _docstrings((REPO / name).read_text()):
            found += [f"{name}:{start + i}: {lines[i].strip()!r}" for i in stray_lines(lines)]
    assert found == [], "re-flow these paragraphs:\n" + "\n".join(found)
