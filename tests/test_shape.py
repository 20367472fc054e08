"""The engine's shape, read from the source (tests/test_layers.py keeps the UI out of it):
no import cycle in agent/, no part that climbs back to the engine, and no module that
reaches into another object's private fields."""

from __future__ import annotations

import ast
from pathlib import Path

AGENT = Path(__file__).resolve().parent.parent / "agent"
COCKPIT = AGENT.parent / "cockpit"

# obj._field on something other than self/cls: the few allowed, each with why.
PRIVATE_ALLOWED = {
    ("agent/store/__init__.py", "store._reserve"): "Store.open finishing the Store it built",
    ("agent/store/opening.py", "pending._thread"): "aiosqlite's thread made a daemon "
    "(tests/test_private_apis.py fails loudly if aiosqlite changes it)",
}
# Textual's private API lives in one module, each use guarded by tests/test_private_apis.py.
TEXTUAL_PRIVATE = "cockpit/textual_private.py"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(AGENT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the agent modules it imports: at module level, under TYPE_CHECKING and
    inside functions alike (a cycle hidden from Python at run time is one in the design)."""
    paths = {module_name(p): p for p in AGENT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(p for p in [*up, base] if p)
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            for target in targets:
                while target and target not in paths:  # the longest module it names
                    target = target.rpartition(".")[0]
                if target and target != name:
                    found.add(target)
        # A package and its own modules are one thing: its __init__ handing on a child's
        # names, or a child naming its package (`from . import events`), is no cycle.
        graph[name] = {
            d for d in found
            if not d.startswith(name + ".") or path.name != "__init__.py"
            if not (paths[d].name == "__init__.py" and name.startswith(d + "."))
        }  # fmt: skip
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle of the graph (its modules in order, the first repeated at the end), or []."""
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def test_the_cycle_finder_finds_a_hidden_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []


def test_agent_has_no_import_cycle() -> None:
    graph = import_graph()
    assert "agent.engine" in graph and "agent.run" in graph["agent.loop"]  # it reads them
    assert find_cycle(graph) == []


def test_no_part_imports_the_engine() -> None:
    """The engine is the composition root: parts talk to each other through what it hands
    them, never back up to it (a run's host is a Protocol, agent/run.py)."""
    graph = import_graph()
    climbing = sorted(m for m, deps in graph.items() if "agent.engine" in deps)
    assert climbing == []  # (agent/__init__.py's lazy `agent.Engine` is the package's own)


def private_reaches(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = str(path.relative_to(root.parent))
        if rel == TEXTUAL_PRIVATE:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import | ast.ImportFrom):  # textual._x, or a _name of it
                names = [a.name for a in node.names]
                module = node.module or "" if isinstance(node, ast.ImportFrom) else ""
                dotted = [f"{module}.{n}" if module else n for n in names]
                found += [f"{rel}:{node.lineno}: import {d}" for d in dotted
                          if d.startswith("textual") and "._" in d]  # fmt: skip
            if not (isinstance(node, ast.Attribute) and node.attr.startswith("_")):
                continue
            if node.attr.startswith("__") or (
                isinstance(node.value, ast.Name) and node.value.id in ("self", "cls", "os")
            ):
                continue  # dunders, one's own fields, os._exit
            text = ast.unparse(node)
            if (rel, text) not in PRIVATE_ALLOWED:
                found.append(f"{rel}:{node.lineno}: {text}")
    return found


def test_no_module_reaches_into_another_objects_private_fields() -> None:
    assert private_reaches(AGENT) == []
    assert private_reaches(COCKPIT) == []  # but the one module for Textual's private API
    # Tests use the engine's public interface too (Textual's and fakes' insides are theirs).
    engine_reaches = [f for f in private_reaches(AGENT.parent / "tests") if ": engine." in f
                      or ".engine." in f]  # fmt: skip
    assert engine_reaches == []


def test_the_lists_of_states_have_one_source() -> None:
    """agent/events.py's LIVE_STATES and END_STATES are the lists: no module spells out
    its own copy (three copies once drifted apart)."""
    from agent import events as ev

    copies = []
    for root in (AGENT, COCKPIT):
        for path in sorted(root.rglob("*.py")):
            if path == AGENT / "events.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
                if isinstance(node, ast.List | ast.Tuple | ast.Set):
                    words = {e.value for e in node.elts if isinstance(e, ast.Constant)}
                    if len(words & set(ev.ALL_STATES)) >= 3:
                        copies.append(f"{path.relative_to(AGENT.parent)}:{node.lineno}")
    assert copies == []
