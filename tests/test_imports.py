"""The package's import graph has no cycles, counting every import: module-level, inside functions, and
type-checking-only ones (a cycle there still ties two modules together for a reader)."""

from __future__ import annotations

import ast
from pathlib import Path

import lgfn

PACKAGE = Path(lgfn.__file__).resolve().parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The lgfn modules a file imports (``from lgfn.x import y`` counts lgfn.x.y when that is a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module != "lgfn":  # `from lgfn import registry` is an import of lgfn.registry
                found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return {m for m in found if m in modules}


def test_no_import_cycles() -> None:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(files)
    graph = {m: imports_of(p, modules) - {m} for m, p in files.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for dep in sorted(graph[m]):
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep):] + [dep]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_public_api() -> None:
    assert lgfn.__version__ and lgfn.register_oracle and lgfn.register_task and lgfn.register
    assert lgfn.GFlowNet.__name__ == "GFlowNet"


def test_a_grid_run_imports_neither_rdkit_nor_viennarna(tmp_path) -> None:
    """RDKit and ViennaRNA are imported by the tasks that use them only (start-up time, and a machine without
    them can still train the other tasks)."""
    import subprocess
    import sys

    code = ("import sys; from lgfn.cli.main import main; "
            f"assert main(['fit', '--config', 'configs/gridworld.yaml', '--data.init_args.rounds', '3', "
            f"'--trainer.logger', 'false', '--trainer.enable_progress_bar', 'false', '--trainer.default_root_dir', "
            f"{str(tmp_path)!r}]) == 0; print(sorted(m for m in ('rdkit', 'RNA') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=PACKAGE.parent, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout[-500:]
