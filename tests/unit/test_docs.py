"""What a user's clone reads stands on its own: no pointer outside the repository, and every relative link in
the README and ``docs/`` names a file that exists."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
# the last: a section of a file cited by name ("dataplane.md §10.4"), as the design notes were
OUTSIDE = re.compile(r"\.\./shared|/work/|\b[\w-]+\.md §")


def _tracked(*patterns: str) -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "--", *patterns], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    return [REPO / line for line in out.splitlines() if (REPO / line).is_file()]


def test_no_file_points_outside_the_repository() -> None:
    # Every tracked text file: docs, code, charts (templates, NOTES.txt), Makefile, scripts, CI.
    files = [f for f in _tracked(".") if b"\0" not in f.read_bytes()[:8192]]
    assert len(files) > 50, "git ls-files found too few files: is this a git checkout?"
    assert {"Makefile", ".ci/run", "charts/ai-gateway-py/templates/NOTES.txt"} <= {
        str(f.relative_to(REPO)) for f in files
    }
    offenders = [
        f"{f.relative_to(REPO)}:{n}: {line.strip()}"
        for f in files
        for n, line in enumerate(f.read_text(errors="replace").splitlines(), 1)
        if OUTSIDE.search(line) and f != Path(__file__).resolve()
    ]
    assert offenders == []


def test_relative_links_in_the_readme_and_docs_resolve() -> None:
    docs = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    assert (REPO / "docs" / "architecture.md") in docs
    broken = [
        f"{d.relative_to(REPO)} -> {target}"
        for d in docs
        for target in LINK.findall(d.read_text())
        if "://" not in target and not (d.parent / target).exists()
    ]
    assert broken == []


def test_the_readme_links_the_architecture() -> None:
    assert "(docs/architecture.md)" in (REPO / "README.md").read_text()
