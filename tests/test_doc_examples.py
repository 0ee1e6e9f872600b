"""The code blocks of the README and the guides run as written, against real pools.

A fenced ``python`` block preceded by ``<!-- test: run -->`` is executed; one preceded by
``<!-- test: file NAME -->`` is written to ``NAME`` first (an adapter module the page then
uses). The blocks of one page run in order in one fresh interpreter, sharing their names as a
reader's session would, in a temporary directory. The markers are HTML comments: neither GitHub
nor the docs site shows them.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"^<!-- test: (run|file [\w./-]+) -->\n```python\n(.*?)^```",
                    re.MULTILINE | re.DOTALL)

#: Runs the page's blocks in one namespace; names the block that failed.
_DRIVER = """
import json, sys, traceback
namespace = {"__name__": "__main__"}
for block in json.load(open(sys.argv[1])):
    try:
        exec(compile(block["code"], f"{block['page']}:{block['line']}", "exec"), namespace)
    except BaseException:
        traceback.print_exc()
        sys.exit(f"the block at {block['page']} line {block['line']} failed")
"""


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    kind: str  # "run" or "file NAME"
    code: str


def blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    name = str(page.relative_to(ROOT)) if page.is_relative_to(ROOT) else page.name
    return [Block(name, text.count("\n", 0, m.start()) + 2, m.group(1), m.group(2))
            for m in _BLOCK.finditer(text)]


RUNNABLE = [page for page in PAGES if any(b.kind == "run" for b in blocks(page))]


def test_the_readme_and_the_guides_have_runnable_blocks() -> None:
    names = {page.name for page in RUNNABLE}
    assert {"README.md", "index.md", "sessions.md", "adapters.md"} <= names, names


def test_a_marker_must_sit_right_above_a_python_block(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("<!-- test: run -->\n```python\nx = 1\n```\n\n<!-- test: run -->\n\n"
                    "```python\ny = 2\n```\n```python\nz = 3\n```\n", encoding="utf-8")
    assert [(b.kind, b.line, b.code) for b in blocks(page)] == [("run", 2, "x = 1\n")]


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("page", RUNNABLE, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_pages_code_blocks_run(page: Path, tmp_path: Path) -> None:
    runs = []
    for block in blocks(page):
        if block.kind.startswith("file "):
            (tmp_path / block.kind.split(" ", 1)[1]).write_text(block.code)
        else:
            runs.append({"page": block.page, "line": block.line, "code": block.code})
    # Pages may run workers with env={"PYTHONPATH": "."} (their adapter module is in the
    # current directory), which hides a checkout put on PYTHONPATH: the packages are linked
    # into that directory, as an installed package would be found in site-packages.
    for name, source in (("snakepit_actors", ROOT / "snakepit_actors"),
                         ("snakepit_supervision", ROOT / "supervision" / "snakepit_supervision")):
        (tmp_path / name).symlink_to(source, target_is_directory=True)
    (tmp_path / "blocks.json").write_text(json.dumps(runs))
    done = subprocess.run([sys.executable, "-c", _DRIVER, str(tmp_path / "blocks.json")],
                          capture_output=True, text=True, timeout=110, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
