"""The documentation runs: README.md and docs/*.md.

A fenced block whose info string is ``bash runnable`` is run (GitHub renders it as bash:
the language is the info string's first word); a block right after it whose info string
is ``output`` is what its stdout must be. The runnable blocks of one page run in order in
one temporary folder, so a later block may use what an earlier one wrote. Each must take
seconds; long commands (``make demo``, training) go in plain ``bash`` blocks, which are
not run. Relative links must point at existing files and headings.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 150
BLOCK_TIMEOUT_S = 60

FENCE = re.compile(r"^(`{3,})(.*)$")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
INLINE_CODE = re.compile(r"`[^`\n]*`")


@dataclass(frozen=True)
class Block:
    """A fenced block: its info string, its text and the line its fence opens on."""

    info: str
    text: str
    line: int


def fenced_blocks(markdown: str) -> list[Block]:
    """The page's fenced code blocks, in order."""
    blocks: list[Block] = []
    lines = markdown.splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        fence, info = opening.group(1), opening.group(2).strip()
        end = index + 1
        while end < len(lines) and not lines[end].startswith(fence):
            end += 1
        blocks.append(Block(info, "\n".join(lines[index + 1 : end]), index + 1))
        index = end + 1
    return blocks


def runnable(page: Path) -> list[tuple[Block, str | None]]:
    """The page's runnable blocks, each with the stdout expected of it (None: not checked)."""
    blocks = fenced_blocks(page.read_text())
    found = []
    for index, block in enumerate(blocks):
        if block.info.split() == ["bash", "runnable"]:
            after = blocks[index + 1] if index + 1 < len(blocks) else None
            expected = after.text if after is not None and after.info == "output" else None
            found.append((block, expected))
    return found


def _outside_blocks(markdown: str) -> list[str]:
    """The page's lines outside its fenced blocks (a "# comment" in a block is no heading)."""
    lines, inside = [], None
    for line in markdown.splitlines():
        opening = FENCE.match(line)
        if inside is None and opening is not None:
            inside = opening.group(1)
        elif inside is not None and line.startswith(inside):
            inside = None
        elif inside is None:
            lines.append(line)
    return lines


def prose(markdown: str) -> str:
    """The page without its fenced blocks and inline code, where links are not links."""
    return "\n".join(INLINE_CODE.sub("", line) for line in _outside_blocks(markdown))


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of the page's headings (lower case, punctuation dropped, - for space)."""
    found = set()
    for line in _outside_blocks(page.read_text()):
        match = re.match(r"^#{1,6}\s+(.*)$", line)
        if match:
            text = match.group(1).strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
    return found


def _normalised(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def _environment(repo: Path) -> dict[str, str]:
    """The venv's commands first on PATH, this checkout's package first on PYTHONPATH, a
    fixed terminal width for argparse's help."""
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(repo), env.get("PYTHONPATH")) if p)
    env["COLUMNS"] = "80"
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


PAGES_WITH_BLOCKS = [page for page in PAGES if runnable(page)]


@pytest.mark.parametrize("page", PAGES_WITH_BLOCKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_runnable_blocks_succeed(page: Path, tmp_path: Path) -> None:
    env = _environment(ROOT)
    for block, expected in runnable(page):
        where = f"{page.relative_to(ROOT)}:{block.line}"
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block.text],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT_S,
        )
        assert done.returncode == 0, f"{where} exited {done.returncode}:\n{done.stderr[-3000:]}"
        if expected is not None:
            assert _normalised(done.stdout) == _normalised(expected), (
                f"{where}: the output block below it is not what the command prints now; "
                f"paste this in:\n{done.stdout}"
            )


def test_some_blocks_are_runnable() -> None:
    """The marker is in use in the README and in the docs (a typo would skip them all)."""
    assert runnable(ROOT / "README.md")
    assert any(runnable(page) for page in PAGES if page.parent.name == "docs")


def test_readme_is_short() -> None:
    lines = len((ROOT / "README.md").read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail into docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in LINK.findall(prose(page.read_text())):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, ...
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target} (no heading #{anchor} in {linked.name})")
    assert not broken, f"{page.relative_to(ROOT)}: broken links: {', '.join(broken)}"
