"""The examples of the README and ``docs/``: found, run against a live server, compared.

An example is a ``console`` block of a Markdown page: lines starting with
``$ curl`` are commands, the lines after each (up to the next ``$``) its
expected output. ``check_page`` runs a page's commands in order against a
server that ``make run`` starts (``python -m launcher.serve``, a fresh data
folder: its examples start from an empty cache, so ``cached`` reads as on
a first run) and compares each output with the page, allowing for what
must differ from run to run:

- timestamps, ``compute_ms`` / ``latency_ms`` figures and cursors are
  compared by shape, not value;
- ``...`` in the page stands for any text (an elided cursor, a long value);
- a trailing comment (two spaces, then ``#``) in an output line is prose;
- a block preceded by ``<!-- examples: not run (why) -->`` is not run
  (one that needs a state the page cannot set up, such as a spent budget).

The address of the page (``http://127.0.0.1:8000``) is replaced by the
server's. ``tests/test_doc_examples.py`` checks every page.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE_ADDRESS = "http://127.0.0.1:8000"
SKIP_MARK = re.compile(r"<!--\s*examples:\s*not run")
_FENCE = re.compile(r"^(\s*)```(\w*)\s*$")  # a block may be indented (in a list)
_COMMENT = re.compile(r"\s{2,}#.*$")
# What differs from run to run, and the token each becomes before comparing.
_VARIABLE = [
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)"), "<time>"),
    (re.compile(r'"(compute_ms|latency_ms)":\s*[0-9.e+-]+'), r'"\1":<ms>'),
    (re.compile(r"cursor=[A-Za-z0-9%=_-]+"), "cursor=<cursor>"),
]


@dataclass(frozen=True)
class Example:
    """One command of a page and the output the page shows for it."""

    page: Path
    line: int
    command: str
    expected: str


def pages() -> list[Path]:
    """Return the pages whose examples are checked: the README and every page of docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def examples(page: Path) -> list[Example]:
    """Return the ``$ curl`` examples of ``page``'s console blocks, in order."""
    found: list[Example] = []
    lines = page.read_text().splitlines()
    in_console = skipped = False
    command: tuple[int, str] | None = None
    output: list[str] = []

    def close() -> None:
        nonlocal command, output
        if command is not None:
            found.append(Example(page, command[0], command[1], "\n".join(output)))
        command, output = None, []

    indent = ""
    for number, raw in enumerate(lines, 1):
        fence = _FENCE.match(raw)
        if fence is not None:
            if in_console:
                close()
                in_console = False
            else:
                in_console = fence.group(2) == "console" and not skipped
                indent = fence.group(1)
                skipped = False
            continue
        line = raw.removeprefix(indent) if in_console else raw
        if not in_console:
            if SKIP_MARK.search(line):
                skipped = True
            elif line.strip():
                skipped = skipped and not line.strip()
            continue
        if line.startswith("$ "):
            close()
            if line.startswith("$ curl "):
                command = (number, line[2:])
        elif command is not None:
            output.append(_COMMENT.sub("", line))
    return found


def normalised(text: str) -> str:
    """Return ``text`` with what differs between runs replaced by tokens."""
    text = text.strip()
    for pattern, token in _VARIABLE:
        text = pattern.sub(token, text)
    return text


def matches(expected: str, actual: str) -> bool:
    """Return True if ``actual`` is what the page shows (``...`` matching any text)."""
    pattern = ".*?".join(re.escape(part) for part in normalised(expected).split("..."))
    return re.fullmatch(pattern, normalised(actual), flags=re.S) is not None


def run(example: Example, port: int, folder: Path) -> str:
    """Run ``example``'s command against 127.0.0.1:``port`` in ``folder``; return its output."""
    command = _COMMENT.sub("", example.command).replace(PAGE_ADDRESS, f"http://127.0.0.1:{port}")
    done = subprocess.run(
        shlex.split(command), capture_output=True, text=True, timeout=60, check=False, cwd=folder
    )
    # The server names itself in links: as the page's address, so they compare.
    return done.stdout.replace(f"http://127.0.0.1:{port}", PAGE_ADDRESS)


def check_page(page: Path, port: int, folder: Path) -> list[str]:
    """Run every example of ``page`` (files it writes land in ``folder``); return a message
    per example whose output differs from the page's."""
    failures = []
    for example in examples(page):
        actual = run(example, port, folder)
        if not matches(example.expected, actual):
            failures.append(
                f"{example.page.name}:{example.line}: {example.command}\n"
                f"  page:   {_shown(example.expected)}\n  actual: {_shown(actual.strip())}"
            )
    return failures


def _shown(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"
