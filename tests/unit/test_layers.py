"""The package import graph points one way: no cycles, nothing imports a layer above it; and
other packages use only a package's public face (its ``__all__``).

The graph is computed from the source with :mod:`ast` (every ``import`` statement, those inside
functions included, so a lazy import counts like any other); ``importlib.import_module`` with a
string is not seen, which is why the daemon imports its parts with plain statements
(:mod:`fluidedge.daemon.registry`). docs/architecture.md explains the layers.
"""

from __future__ import annotations

import ast
import importlib
from collections import defaultdict
from pathlib import Path

import fluidedge

SRC = Path(fluidedge.__file__).parent

# Bottom to top; a package may import only from packages in lower layers. The root modules
# ``fluidedge`` (the version) and ``fluidedge.errors`` (the error kinds) sit below everything.
# ``ovs`` (our Open vSwitch daemons, over linux) sits beside core; ``ovn`` (OVN run over our
# OVS) beside tenants, below the instance networks and security groups that use it;
# ``tenants`` (who owns what, admission) below the parts whose routes it scopes;
# ``secgroups`` over the instance networks it filters; the TOF over the instance manager its
# on-demand services (``fluidedge.tof.superfluid``) start and pause; the cluster (nodes,
# placement across them) over the instance manager it places for.
LAYERS: list[set[str]] = [
    {"errors"},
    {"codec", "linux"},
    {"core", "ovs"},
    {"tenants", "ovn"},
    {"lab", "instances"},
    {"tof", "secgroups", "cat", "chains", "cluster"},
    {"measure", "mec"},
    {"gui"},
    {"daemon"},
    {"demo", "cli"},
    {"__main__"},
]
RANK = {package: rank for rank, layer in enumerate(LAYERS) for package in layer}


def _package_of(path: Path) -> tuple[str, list[str]]:
    """(top-level package under fluidedge, the module's dotted parts)."""
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return (parts[1] if len(parts) > 1 else ""), parts


def _imports(path: Path) -> list[tuple[str, int, list[str]]]:
    """(imported module, line, names imported from it) for every import of fluidedge code."""
    _, parts = _package_of(path)
    package_parts = parts if path.name == "__init__.py" else parts[:-1]
    found: list[tuple[str, int, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append((module, node.lineno, [alias.name for alias in node.names]))
    return [(m, line, names) for m, line, names in found if m.split(".")[0] == "fluidedge"]


def _edges() -> dict[tuple[str, str], list[str]]:
    """(importer package, imported package) -> where, for imports that cross packages."""
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in sorted(SRC.rglob("*.py")):
        source, _ = _package_of(path)
        for module, line, names in _imports(path):
            dotted = module.split(".")
            if len(dotted) == 1:  # ``from fluidedge import errors`` / ``import fluidedge``
                targets = [n for n in names if n == "errors"] or [""]
            else:
                targets = [dotted[1]]
            for target in targets:
                if target and target != source:
                    where = f"{path.relative_to(SRC.parent)}:{line} ({module})"
                    edges[(source, target)].append(where)
    return edges


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle in ``graph`` if there is one (depth-first search, colouring)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def test_every_package_has_a_layer() -> None:
    packages = {p.stem for p in SRC.glob("*.py")} | {
        p.parent.name for p in SRC.glob("*/__init__.py")
    }
    assert packages - {"__init__"} <= set(RANK)  # a new package must be placed


def test_cycle_finder_finds_a_cycle() -> None:
    # The checker itself can fail: a hand-made cycle is found, a chain is not.
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}}) is None


def test_no_package_level_cycle() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for source, target in _edges():
        graph[source].add(target)
    assert _cycle(graph) is None


def test_imports_point_down_the_layers() -> None:
    upward = [
        f"{source} (layer {RANK[source]}) imports {target} (layer {RANK[target]}): {where[0]}"
        for (source, target), where in sorted(_edges().items())
        if RANK[target] >= RANK[source]
    ]
    assert upward == []


def _face(package: str) -> set[str]:
    """A package's public face: the names in its ``__all__`` (names and public modules)."""
    return set(getattr(importlib.import_module(f"fluidedge.{package}"), "__all__", ()))


def _reach_ins() -> list[str]:
    """Cross-package imports of something outside the target package's public face."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        source, _ = _package_of(path)
        for module, line, names in _imports(path):
            dotted = module.split(".")
            if len(dotted) < 2 or dotted[1] == source or dotted[1] in {"errors", "cli"}:
                continue  # own package, the root error kinds, the root CLI
            face = _face(dotted[1])
            if len(dotted) == 2:  # from fluidedge.X import a, b
                outside = [n for n in names if n not in face] if names else []
            elif dotted[2] in face:  # a public module (or subpackage) of X
                outside = []
            else:  # a private module: only names X re-exports may come from it
                outside = [n for n in names if n not in face] or [module]
            where = f"{path.relative_to(SRC.parent)}:{line}"
            found += [f"{where}: {module} {name}" for name in outside]
    return found


def test_every_package_declares_a_public_face() -> None:
    packages = {p.parent.name for p in SRC.glob("*/__init__.py")}
    faceless = sorted(p for p in packages if p not in {"demo", "daemon"} and not _face(p))
    assert faceless == []  # the daemon and the demo are on top: nobody imports them


def test_other_packages_use_only_the_public_face() -> None:
    assert _reach_ins() == []
