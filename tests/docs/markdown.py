"""Reading the project's markdown: fenced blocks with their markers, links, headings.

The example convention (docs/writing-docs.md says it for authors): a request example is a
fenced block holding `curl` commands (```sh) or one raw HTTP request (```http: a
`METHOD /path` line, header lines, a blank line, a body). It is preceded by a marker comment:

    <!-- example: status=201 -->            run it; each request must answer 201
    <!-- example: status=200,201 id=x -->   two requests in the block; `id` names the example
    <!-- example: skip="why" -->            not run (the reason is required)
    <!-- response -->                       (before a ```json block) the shape the previous
                                            example's last response must have

A block with a request in it and no marker fails the docs test, so a new example is either run
or explicitly skipped.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

MARKER = re.compile(r"<!--\s*(example|response)\s*:?\s*(.*?)\s*-->")
FENCE = re.compile(r"^(```+|~~~+)\s*([\w+-]*)")
HTTP_REQUEST_LINE = re.compile(r"^(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) (/\S*)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
LINK = re.compile(r"(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def documents() -> list[Path]:
    """README.md and every page under docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    info: str
    text: str
    marker: str | None = None  # "example" or "response"
    options: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        shown = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path
        return f"{shown}:{self.line}"

    @property
    def is_request(self) -> bool:
        if self.info == "http":
            return True
        lines = [line.strip() for line in self.text.splitlines() if line.strip()]
        if lines and HTTP_REQUEST_LINE.match(lines[0]):
            return True
        return any(re.search(r"(^|[\s$(])curl\s", line) for line in lines)


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of a page, each with the marker comment right above it (if any)."""
    found: list[Block] = []
    lines = path.read_text().splitlines()
    pending: tuple[str, dict[str, str]] | None = None
    index = 0
    while index < len(lines):
        line = lines[index]
        marker = MARKER.search(line)
        if marker:
            pending = (marker.group(1), parse_options(marker.group(2)))
            index += 1
            continue
        fence = FENCE.match(line)
        if fence:
            closing = fence.group(1)
            body: list[str] = []
            index += 1
            while index < len(lines) and not lines[index].startswith(closing):
                body.append(lines[index])
                index += 1
            block = Block(path, index - len(body), fence.group(2), "\n".join(body) + "\n")
            if pending is not None:
                block.marker, block.options = pending
            found.append(block)
            pending = None
        elif line.strip():
            pending = None  # a marker applies to the block right after it only
        index += 1
    return found


def parse_options(text: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for part in shlex.split(text):
        name, _, value = part.partition("=")
        options[name] = value
    return options


def headings(path: Path) -> list[str]:
    """Heading texts, outside fenced blocks."""
    found: list[str] = []
    in_fence = False
    for line in path.read_text().splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        match = HEADING.match(line)
        if match and not in_fence:
            found.append(match.group(2))
    return found


def anchors(path: Path) -> set[str]:
    """GitHub's anchors for a page's headings (lowercase, punctuation dropped, spaces to
    hyphens, repeats numbered)."""
    seen: dict[str, int] = {}
    result: set[str] = set()
    for text in headings(path):
        plain = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
        slug = re.sub(r"[^\w\- ]", "", plain.lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f"{slug}-{count}")
    return result


def links(path: Path) -> list[tuple[int, str]]:
    """(line, target) of each markdown link outside fenced blocks and code spans."""
    found: list[tuple[int, str]] = []
    in_fence = False
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        without_code = re.sub(r"`[^`]*`", "", line)
        found.extend((number, match.group(1)) for match in LINK.finditer(without_code))
    return found
