"""The package's layout: no import cycles between its modules, the layer contract, and modules and functions
short enough to read (or a reason written beside them)."""

import ast
import shutil
import subprocess
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "purejaxppo"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80
MODULE_REASON = "# long-module:"  # within a module's first lines: why it stays longer
FUNCTION_REASON = "# long-function:"  # on the line above a def (or its decorators): why it stays longer


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The package modules `path` imports when it runs: top level or inside functions (an import hidden in a
    function is still an import), not under `if TYPE_CHECKING:`."""
    me = module_name(path)
    found: set[str] = set()

    def visit(node):
        for child in ast.iter_child_nodes(node):
            if _type_checking_block(child):
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                found.update(f"{child.module}.{a.name}" for a in child.names)
                found.add(child.module)
            visit(child)

    visit(ast.parse(path.read_text()))
    out = set()
    for name in found:  # the longest package module the name is (or is inside of)
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name and name != me:
            out.add(name)
    return out


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(paths)
    return {m: imports_of(p, modules) for m, p in paths.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def _package_inits_removed(graph):
    """Edges into a package's own __init__ from its submodules (`from purejaxppo.envs import X` inside
    purejaxppo.envs.brax) and from the package root, which re-exports everything, are not layering edges."""
    pruned = {}
    for m, deps in graph.items():
        keep = set()
        for d in deps:
            if d == "purejaxppo" or m.startswith(d + "."):
                continue
            keep.add(d)
        pruned[m] = keep
    return pruned


def test_no_import_cycles_between_modules():
    found = cycles(_package_inits_removed(import_graph()))
    assert not found, f"import cycles (function-local imports count): {found}"


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_or_function_is_long_without_a_reason():
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        lines = text.splitlines()
        rel = path.relative_to(PACKAGE.parent)
        if len(lines) > MAX_MODULE_LINES and not any(MODULE_REASON in ln for ln in lines[:40]):
            long.append(f"{rel}: {len(lines)} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                if n > MAX_FUNCTION_LINES and FUNCTION_REASON not in lines[first - 2]:
                    long.append(f"{rel}:{node.lineno} {node.name}: {n} lines")
    assert not long, "over the limits, with no reason written beside them:\n" + "\n".join(long)


def test_no_private_name_crosses_a_module_boundary():
    """`from purejaxppo.x import _name` only inside x's own package (its private submodules); anything another
    module needs is public in the module that owns it."""
    crossing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        me = module_name(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("purejaxppo"):
                own = node.module == me or me.startswith(node.module + ".")
                for a in node.names:
                    if a.name.startswith("_") and not own:
                        crossing.append(f"{me}: from {node.module} import {a.name}")
    assert not crossing, crossing


def test_benchmark_scripts_import_only_names_that_exist():
    """The scripts in benchmarks/ are not imported by the tests: check their `from purejaxppo... import` names."""
    import importlib
    import importlib.util

    missing = []
    for path in sorted((PACKAGE.parent / "benchmarks").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("purejaxppo"):
                module = importlib.import_module(node.module)
                for a in node.names:
                    if not hasattr(module, a.name) and importlib.util.find_spec(f"{node.module}.{a.name}") is None:
                        missing.append(f"{path.name}: from {node.module} import {a.name}")
    assert not missing, missing


@pytest.mark.skipif(shutil.which("lint-imports") is None, reason="import-linter is in the dev extra")
def test_the_layer_contract_holds():
    res = subprocess.run(["lint-imports"], cwd=PACKAGE.parent, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
