"""The package's layers, read from the source with ``ast``: imports point only downwards, with no circles.

Every ``import`` counts, those inside functions too (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "adam_np"

# Lower layers first; a module may import from its own layer or any layer below it.
LAYERS = [
    ("core", ["adam_np.core"]),
    ("kernels", ["adam_np.kernels"]),
    ("dask", ["adam_np._dask"]),  # the optimizer's Dask layer: cutting the scheduler's task history
    ("checkpoint", ["adam_np.checkpoint"]),
    ("optimizer", ["adam_np.optimizer"]),
    ("applications", ["adam_np.book", "adam_np.verify", "adam_np.cluster"]),
    ("front", ["adam_np.cli", "adam_np.__main__", "adam_np"]),
]

# Third-party modules that only some places may import: the backends and the cluster engine.
RESTRICTED = {
    "cupy": ["adam_np.core._xp", "adam_np.kernels"],
    "numba": ["adam_np.kernels"],
    "array_api_compat": ["adam_np.core._xp", "adam_np.kernels"],
    "dask": ["adam_np.core._xp", "adam_np.kernels", "adam_np.cluster"],  # _xp: persist(); kernels: per chunk
    # _xp: persist() waits on the client and raises a task's error; _dask: cuts the scheduler's task history
    "distributed": ["adam_np.core._xp", "adam_np._dask", "adam_np.cluster"],
    "zarr": ["adam_np.cluster"],
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """(modules of adam_np, top-level third-party names) that the file at ``path`` imports."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    internal, external = set(), set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                if top == "adam_np":
                    internal.add(alias.name)
                else:
                    external.add(top)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if node.module.split(".")[0] == "adam_np":
                    base = node.module
                else:
                    external.add(node.module.split(".")[0])
                    continue
            else:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            for alias in node.names:  # "from . import adam" imports the module adam_np.core.adam
                candidate = f"{base}.{alias.name}"
                internal.add(candidate if _is_module(candidate) else base)
    return internal, external


def _graph() -> dict[str, tuple[set[str], set[str]]]:
    return {_module_name(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def _layer(module: str) -> int:
    best = None
    for rank, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (rank, len(prefix))
    assert best is not None, f"{module} is in no layer of tests/test_layout.py: add it"
    return best[0]


GRAPH = _graph()


def test_graph_sees_the_package():
    assert {"adam_np.core.adam", "adam_np.optimizer", "adam_np.kernels.numpy_kernel", "adam_np.book.train",
            "adam_np.cli"} <= set(GRAPH)
    assert "adam_np.core.config" in GRAPH["adam_np.core.adam"][0]
    assert "numba" in GRAPH["adam_np.kernels.numba_kernel"][1]


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_point_downwards(module):
    upward = sorted(dep for dep in GRAPH[module][0] if _layer(dep) > _layer(module))
    assert not upward, f"{module} (layer {LAYERS[_layer(module)][0]}) imports from a layer above it: {upward}"


def test_no_import_circles():
    edges = {m: {d for d in deps if d in GRAPH and d != m} for m, (deps, _) in GRAPH.items()}
    # the package __init__ of a module's own package runs first anyway; an edge to it is no circle
    edges = {m: {d for d in ds if not m.startswith(d + ".")} for m, ds in edges.items()}
    done, path = set(), []

    def visit(node):
        if node in path:
            cycle = path[path.index(node):] + [node]
            raise AssertionError("import circle: " + " -> ".join(cycle))
        if node in done:
            return
        path.append(node)
        for dep in sorted(edges[node]):
            visit(dep)
        path.pop()
        done.add(node)

    for module in sorted(edges):
        visit(module)


@pytest.mark.parametrize("library", sorted(RESTRICTED))
def test_backends_are_imported_only_where_they_belong(library):
    allowed = RESTRICTED[library]
    offenders = sorted(m for m, (_, ext) in GRAPH.items() if library in ext
                       and not any(m == a or m.startswith(a + ".") for a in allowed))
    assert not offenders, f"{library} imported outside {allowed}: {offenders}"


def test_detector_finds_an_upward_import_and_a_circle(tmp_path, monkeypatch):
    """The checks above can fail: a core module importing the optimizer is caught, and so is a circle."""
    core = tmp_path / "adam_np" / "core"
    core.mkdir(parents=True)
    (tmp_path / "adam_np" / "__init__.py").write_text("")
    (tmp_path / "adam_np" / "optimizer.py").write_text("from .core import a\n")
    (core / "__init__.py").write_text("")
    (core / "a.py").write_text("def f():\n    from ..optimizer import Adam\n    from . import b\n")
    (core / "b.py").write_text("from .a import f\nimport numba\n")
    monkeypatch.setitem(globals(), "PACKAGE", tmp_path / "adam_np")
    graph = _graph()
    assert graph["adam_np.core.a"][0] == {"adam_np.optimizer", "adam_np.core.b"}
    assert "numba" in graph["adam_np.core.b"][1]
    monkeypatch.setitem(globals(), "GRAPH", graph)
    with pytest.raises(AssertionError, match="import circle: adam_np.core.a -> adam_np.core.b -> adam_np.core.a"):
        test_no_import_circles()
    with pytest.raises(AssertionError, match="imports from a layer above it: .'adam_np.optimizer'"):
        test_imports_point_downwards("adam_np.core.a")
    with pytest.raises(AssertionError, match="numba imported outside"):
        test_backends_are_imported_only_where_they_belong("numba")
