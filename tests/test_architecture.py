"""The layering rules of docs/architecture.md, checked on the source."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "napari_dfcseg"


def _import_graph():
    """module -> modules of the package it imports (module- and function-level imports)."""
    mods = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                candidates = [target] + [f"{target}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                candidates = [a.name for a in node.names]
            else:
                continue
            deps.update(c for c in candidates if c in mods and c != name)
        graph[name] = deps
    return graph, mods


def test_no_import_cycles_between_modules():
    # a package's __init__ importing its own sub-modules is how packages work, not a cycle
    graph, mods = _import_graph()
    cycles = set()

    def visit(node, path):
        for dep in graph[node]:
            if dep in path:
                cycle = path[path.index(dep):]
                if not any(mods[m].name == "__init__.py" for m in cycle):
                    cycles.add(" -> ".join(cycle + [dep]))
            else:
                visit(dep, path + [dep])

    for name in graph:
        visit(name, [name])
    assert not cycles, sorted(cycles)


def test_engine_and_io_never_import_the_gui():
    for path in [*SRC.joinpath("engine").rglob("*.py"), *SRC.joinpath("io").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
                     else [])
            roots = {n.split(".")[0] for n in names}
            assert not roots & {"napari", "qtpy", "magicgui", "PyQt5", "vispy"}, (path.name, roots)
