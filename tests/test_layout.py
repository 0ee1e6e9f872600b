"""The package's shape, checked on every run: no import cycle between modules, and no
hand-written module over 400 lines (docs/architecture.md, "Layers"). The layering contracts
themselves are ``lint-imports``' job ([tool.importlinter] in pyproject.toml)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

import grimp

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"snakepit_actors": ROOT / "snakepit_actors",
            "snakepit_supervision": ROOT / "supervision" / "snakepit_supervision"}
MAX_LINES = 400
#: Generated code, not held to the size rule.
GENERATED = {Path("snakepit_actors") / "_proto"}
#: Modules allowed over the limit (paths from the repository root): none since issue 11.
KNOWN_LONG: set[str] = set()


class _Graph(Protocol):
    def find_modules_directly_imported_by(self, module: str) -> set[str]: ...


def _cycles(graph: _Graph, modules: Iterable[str]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm,
    iterative), each sorted; a module importing itself counts too."""
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            targets = edges.get(node, [])
            if i < len(targets):
                work.append((node, i + 1))
                target = targets[i]
                if target not in index:
                    work.append((target, 0))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in edges[node]:
                    found.append(sorted(component))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return found


def _modules() -> list[Path]:
    return sorted(path for package in PACKAGES.values() for path in package.rglob("*.py")
                  if not any(path.relative_to(ROOT).is_relative_to(g) for g in GENERATED))


def _lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def test_no_module_of_either_package_takes_part_in_an_import_cycle() -> None:
    # Imports seen only by the type checker (under ``if TYPE_CHECKING:``) never run: a cycle
    # through them is allowed.
    graph = grimp.build_graph(*PACKAGES, exclude_type_checking_imports=True)
    cycles = _cycles(graph, graph.modules)
    assert not cycles, "import cycles (break each one):\n" + "\n".join(
        "  " + " <-> ".join(cycle) for cycle in cycles)


def test_the_cycle_finder_finds_a_cycle_and_a_self_import() -> None:
    class Graph:
        def __init__(self, edges: dict[str, set[str]]) -> None:
            self.edges = edges

        def find_modules_directly_imported_by(self, module: str) -> set[str]:
            return self.edges[module]

    graph = Graph({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"d", "a"}, "e": set()})
    assert _cycles(graph, graph.edges) == [["a", "b", "c"], ["d"]]


def test_every_hand_written_module_has_at_most_400_lines() -> None:
    long = {str(path.relative_to(ROOT)): _lines(path) for path in _modules()
            if _lines(path) > MAX_LINES}
    offenders = {name: n for name, n in long.items() if name not in KNOWN_LONG}
    assert not offenders, f"modules over {MAX_LINES} lines (split them): " + ", ".join(
        f"{name} ({n})" for name, n in sorted(offenders.items()))


def test_the_known_long_modules_still_exist_and_are_still_long() -> None:
    # An entry that no longer applies must leave the list, so the list only shrinks.
    stale = {name for name in KNOWN_LONG
             if not (ROOT / name).exists() or _lines(ROOT / name) <= MAX_LINES}
    assert not stale, f"remove from KNOWN_LONG (now within {MAX_LINES} lines): {sorted(stale)}"
