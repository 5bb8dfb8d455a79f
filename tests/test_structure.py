"""The package's shape: imports run one way through the layers, with no cycle (function-level imports included).

Read from the source with ``ast``, so an import hidden inside a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fer_batch"

# The one-way order, lowest first: options/types → stages → pipeline → jobs → segments/cluster → runner → api → cli.
# A module may import from its own layer or a lower one, never from a higher one. Every module must be placed.
LAYERS: list[tuple[str, set[str]]] = [
    ("options/types", {"_version", "options", "types", "planes", "atomic"}),
    ("stages", {"models", "decode", "detect", "detect.base", "detect.centerface", "detect.haar", "detect.whole",
                "classify", "crop", "track", "sink", "draw", "h264", "render"}),  # fmt: skip
    ("pipeline", {"pipeline"}),
    ("jobs", {"jobs"}),
    ("segments/cluster", {"segments", "cluster"}),
    ("runner", {"runner", "webcam"}),  # webcam: the live-camera runner
    ("api", {"api", "summary", "report"}),  # summary and report read a run folder, as load() does
    ("cli", {"cli", "", "__main__"}),  # "": the package itself, whose attributes are the API
]


def module_name(path: Path) -> str:
    """``fer_batch/detect/haar.py`` → ``detect.haar``; a package's ``__init__`` is the package (root: ``""``)."""
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(path: Path, name: str, known: set[str]) -> Iterator[tuple[str, int]]:
    """(module of fer_batch, line) for every import anywhere in the file, resolved to the module it loads."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                stem = "fer_batch" + "".join(f".{p}" for p in [*base, *(node.module or "").split(".")] if p)
            else:
                stem = node.module or ""
            # ``from fer_batch import models`` loads the submodule; ``from fer_batch.x import f`` loads x
            targets = [f"{stem}.{a.name}" if _rel(f"{stem}.{a.name}") in known else stem for a in node.names]
        else:
            continue
        for target in targets:
            if target != "fer_batch" and not target.startswith("fer_batch."):
                continue
            rel = _rel(target)
            while rel not in known and "." in rel:  # ``import fer_batch.x.y`` where y is not a module
                rel = rel.rsplit(".", 1)[0]
            yield (rel if rel in known else ""), node.lineno


def _rel(target: str) -> str:
    return target[len("fer_batch.") :] if target.startswith("fer_batch.") else ""


def graph() -> dict[str, dict[str, int]]:
    """module → {imported module: first line}, self-imports left out."""
    mods = modules()
    edges: dict[str, dict[str, int]] = {m: {} for m in mods}
    for name, path in mods.items():
        for target, line in imported(path, name, set(mods)):
            if target != name:
                edges[name].setdefault(target, line)
    return edges


def layer_of(name: str) -> int:
    for k, (_, members) in enumerate(LAYERS):
        if name in members:
            return k
    raise KeyError(name)


def test_every_module_has_a_layer() -> None:
    unplaced = sorted(m or "fer_batch" for m in modules() if not any(m in members for _, members in LAYERS))
    assert not unplaced, f"place these modules in LAYERS of {Path(__file__).name}: {unplaced}"


def test_imports_never_run_against_the_layer_order() -> None:
    wrong = []
    for src, targets in graph().items():
        for dst, line in targets.items():
            try:
                if layer_of(dst) > layer_of(src):
                    wrong.append(f"fer_batch/{src or '__init__'}:{line} imports {dst or 'fer_batch'} "
                                 f"({LAYERS[layer_of(src)][0]} → {LAYERS[layer_of(dst)][0]})")  # fmt: skip
            except KeyError:
                pass  # reported by test_every_module_has_a_layer
    assert not wrong, "\n".join(wrong)


def find_cycle(edges: dict[str, dict[str, int]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, {})):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def test_there_is_no_import_cycle() -> None:
    cycle = find_cycle(graph())
    assert cycle is None, " → ".join(m or "fer_batch" for m in cycle or [])


@pytest.mark.parametrize(
    "edges, expected",
    [
        ({"a": {"b": 1}, "b": {"c": 1}, "c": {}}, None),
        ({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}}, ["a", "b", "c", "a"]),
    ],
)
def test_the_cycle_finder_finds_cycles(edges: dict[str, dict[str, int]], expected: list[str] | None) -> None:
    assert find_cycle(edges) == expected


def test_function_level_imports_are_seen() -> None:
    """The graph includes imports made inside functions: the cli imports the runner only inside ``analyze``."""
    tree = ast.parse((PACKAGE / "cli.py").read_text())
    top_level = {n.module for n in tree.body if isinstance(n, ast.ImportFrom)}
    assert "fer_batch.runner" not in top_level
    assert "runner" in dict(imported(PACKAGE / "cli.py", "cli", set(modules())))


MAX_BODY_LINES = 60


def function_lengths() -> Iterator[tuple[str, int]]:
    """(``file:line name``, body lines) of every function and method, nested ones included, docstring counted."""
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                where = f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}"
                yield where, node.end_lineno - node.body[0].lineno + 1


def test_no_function_body_is_longer_than_60_lines() -> None:
    long = [f"{where}: {n} lines" for where, n in function_lengths() if n > MAX_BODY_LINES]
    assert not long, "\n".join(long)
