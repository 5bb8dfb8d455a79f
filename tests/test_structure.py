"""The package's shape: imports run one way through the layers, with no cycle (function-level imports included).

Read from the source with ``ast``, so an import hidden inside a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fer_batch"

# The one-way order, lowest first. Each layer is a subpackage (or, at the bottom and the top, a few modules): a module
# may import from its own layer or a lower one, never from a higher one. Every module must be placed.
LAYERS: list[tuple[str, set[str]]] = [
    ("base", {"_version", "_atomic", "_text", "_progress", "options", "types", "planes", "errors", "columns"}),
    ("media", {"media"}),  # probe, orientation, sampling, the reader
    ("analysis", {"analysis"}),  # models, detectors, tracker, crops, classifier, the engine
    ("outputs", {"outputs"}),  # table, annotated video, summary, report, export
    ("runs", {"runs"}),  # one input, folders, workers, cluster, segments
    ("live", {"live"}),  # webcam sessions
    ("api", {"api"}),
    ("cli", {"cli", "_help", "", "__main__"}),  # "": the package itself, whose attributes are the API
]
SUBPACKAGES = ["media", "analysis", "outputs", "runs", "live"]


def placed_as(name: str) -> str:
    """The name a module is placed by: its subpackage (``runs.jobs`` → ``runs``) or itself at the top."""
    return name.split(".")[0]


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
            # ``from fer_batch.analysis import models`` loads the submodule; ``from fer_batch.x import f`` loads x
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
        if placed_as(name) in members:
            return k
    raise KeyError(name)


def test_every_module_has_a_layer() -> None:
    unplaced = sorted(m or "fer_batch" for m in modules() if not any(placed_as(m) in members for _, members in LAYERS))
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


def test_the_layers_are_folders_each_saying_what_it_holds() -> None:
    """A newcomer reads the architecture from ``ls fer_batch/``: one subpackage per layer, with a docstring."""
    for sub in SUBPACKAGES:
        init = PACKAGE / sub / "__init__.py"
        assert init.is_file(), f"fer_batch/{sub}/ is not a package"
        assert ast.get_docstring(ast.parse(init.read_text())), f"fer_batch/{sub}/__init__.py has no docstring"
    top = {p.stem for p in PACKAGE.glob("*.py")}
    assert top <= {"__init__", "__main__", "_version", "_atomic", "_text", "_progress", "_help", "api", "columns",
                   "options", "types", "planes", "errors"}, sorted(top)  # fmt: skip


def test_the_public_api_is_declared_and_each_name_resolves() -> None:
    import fer_batch

    assert set(fer_batch.__all__) == {"__version__", *fer_batch._PUBLIC}
    for name in fer_batch.__all__:
        assert getattr(fer_batch, name) is not None, name


def test_python_dash_m_fer_batch_is_the_command_line() -> None:
    out = subprocess.run([sys.executable, "-m", "fer_batch", "--help"], capture_output=True, text=True, timeout=120,
                         cwd=PACKAGE.parent)  # fmt: skip
    assert out.returncode == 0 and "analyze" in out.stdout, out.stderr


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
    path = PACKAGE / "cli" / "analyze.py"
    top_level = {n.module for n in ast.parse(path.read_text()).body if isinstance(n, ast.ImportFrom)}
    assert "fer_batch.runs.runner" not in top_level
    assert "runs.runner" in dict(imported(path, "cli.analyze", set(modules())))


MAX_BODY_LINES = 60


def function_lengths() -> Iterator[tuple[str, int]]:
    """(``file:line name``, body lines) of every function and method, nested ones included, docstring counted."""
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                where = f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}"
                yield where, node.end_lineno - node.body[0].lineno + 1


MAX_MODULE_LINES = 400


def test_no_module_is_longer_than_400_lines() -> None:
    """A module holds one concern: past 400 lines it is time to split it along a seam."""
    long = [f"{p.relative_to(PACKAGE.parent)}: {n} lines" for p in sorted(PACKAGE.rglob("*.py"))
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES]  # fmt: skip
    assert not long, "\n".join(long)


def test_no_function_body_is_longer_than_60_lines() -> None:
    long = [f"{where}: {n} lines" for where, n in function_lengths() if n > MAX_BODY_LINES]
    assert not long, "\n".join(long)


HEAVY = ("av", "cv2", "pandas", "pyarrow", "onnxruntime")


def heavy_modules_after(code: str) -> list[str]:
    """The heavy modules loaded by running ``code`` in a fresh interpreter."""
    probe = f"import sys\n{code}\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    return [m for m in out.stdout.strip().split(",") if m]


def test_help_loads_no_heavy_module() -> None:
    """``fer-batch --help`` lists every command without loading av, cv2, pandas, pyarrow or onnxruntime."""
    code = (
        "from typer.testing import CliRunner\n"
        "from fer_batch.cli import app\n"
        "r = CliRunner().invoke(app, ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "assert all(c in r.output for c in ('analyze', 'models', 'render', 'webcam', 'summary')), r.output"
    )
    assert heavy_modules_after(code) == []


@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [
        ["analyze", "x.mp4", "--out", "o", "--fps", "0"],
        ["analyze", "x.mp4", "--out", "o", "--jobs", "0"],
        ["analyze", "x.mp4", "--out", "o", "--fps", "abc"],  # typer's own type check
        ["webcam", "--out", "o", "--seconds", "-1"],
        ["render", "x.mp4", "t.parquet", "--out", "o.mp4", "--scale", "0"],
    ],
)
def test_option_errors_answer_before_heavy_modules_load(args: list[str]) -> None:
    code = (
        "from typer.testing import CliRunner\n"
        "from fer_batch.cli import app\n"
        f"r = CliRunner().invoke(app, {args!r})\n"
        "assert r.exit_code == 2, (r.exit_code, r.output)"
    )
    assert heavy_modules_after(code) == []


@pytest.mark.slow
def test_import_fer_batch_is_light_until_the_api_is_used() -> None:
    assert heavy_modules_after("import fer_batch") == []
    assert "pandas" in heavy_modules_after("import fer_batch\nfer_batch.load")
