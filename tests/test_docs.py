"""The README and the guides point only to files of this repository: every relative link and
every backquoted ``docs/...`` path resolves, and nothing (guides, docstrings, comments, scripts)
refers to design notes users do not have."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: Everything else a user reads: the code (its docstrings and comments), the scripts, the
#: examples and the packaging (generated stubs excepted).
SOURCES = [path for folder in ("snakepit_actors", "supervision", "scripts", "docs/examples")
           for path in sorted((ROOT / folder).rglob("*.py")) if "_proto" not in path.parts]
SOURCES += [ROOT / "pyproject.toml", ROOT / ".ci" / "run"]
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_DOCS_PATH = re.compile(r"`((?:docs|examples)/[^`\s]+\.(?:md|py))`")
_EXTERNAL = ("http://", "https://", "mailto:", "#")
#: Mentions of material that only the project's developers have.
_PRIVATE = re.compile(r"\.\./shared|\bDESIGN\b|\breference/[\w-]+\.md")


def _page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def _broken_links(page: Path) -> list[str]:
    text = page.read_text(encoding="utf-8")
    broken = []
    for target in _LINK.findall(text):
        if target.startswith(_EXTERNAL):
            continue
        path = (page.parent / target.split("#", 1)[0]).resolve()
        if not (path.is_relative_to(ROOT) and path.exists()):
            broken.append(target)
    for mention in _DOCS_PATH.findall(text):  # backquoted paths are read from the page's
        if not ((page.parent / mention).exists() or (ROOT / mention).exists()):  # dir or root
            broken.append(mention)
    return broken


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_every_relative_link_resolves_to_a_file_in_the_repository(page: Path) -> None:
    assert not _broken_links(page), f"{_page_id(page)}: {_broken_links(page)}"


@pytest.mark.parametrize("page", PAGES + SOURCES, ids=_page_id)
def test_nothing_refers_to_design_notes_users_do_not_have(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    found = [f"line {text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}"
             for m in _PRIVATE.finditer(text)]
    assert not found, f"{_page_id(page)}: {found}"


def test_the_checks_catch_a_broken_link_and_a_private_reference(tmp_path: Path) -> None:
    probe = tmp_path / "probe.md"
    probe.write_text("see [x](no-such-page.md), [web](https://example.org/a) and "
                     "`docs/gone.md`", encoding="utf-8")
    assert _broken_links(probe) == ["no-such-page.md", "docs/gone.md"]
    assert _PRIVATE.search("as ../shared/DESIGN.md says") is not None
    assert _PRIVATE.search("see reference/thespian-notes.md") is not None
    assert _PRIVATE.search("the design of the pool") is None
