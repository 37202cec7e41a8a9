"""The package's layers, module by module: every folder imports only what the table in
docs/architecture.md allows, and no module imports one that imports it back.

Imports are read from the source (``ast``), function-level ones included, those under
``if TYPE_CHECKING:`` left out (they never run).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "mailspool"
FLAT = "(flat)"
ENTRY = frozenset({"web", "aws", "integrations", "cli", "mailspool"})

#: What each folder may import besides itself (docs/architecture.md, "Imports go one way").
BELOW: dict[str, frozenset[str]] = {
    FLAT: frozenset({FLAT}),
    "stores": frozenset({FLAT}),
    "transports": frozenset({FLAT}),
    "spool": frozenset({FLAT, "stores"}),
    "webhooks": frozenset({FLAT, "stores", "spool"}),
    "feedback": frozenset({FLAT, "stores", "spool", "transports", "webhooks"}),
    "policy": frozenset({FLAT, "stores", "spool", "feedback", "transports", "webhooks"}),
    "producer": frozenset(
        {FLAT, "stores", "spool", "feedback", "policy", "transports", "webhooks"}
    ),
    "delivery": frozenset(
        {FLAT, "stores", "spool", "feedback", "policy", "transports", "webhooks"}
    ),
    "triggers": frozenset(
        {FLAT, "stores", "spool", "feedback", "policy", "transports", "producer", "delivery"}
        | {"webhooks"}
    ),
    "ops": frozenset(
        {FLAT, "stores", "spool", "feedback", "policy", "transports", "producer", "delivery"}
        | {"triggers", "webhooks"}
    ),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def folder(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "mailspool"
    return parts[1] if (PACKAGE / parts[1]).is_dir() else FLAT


def imported(module: str) -> set[str]:
    """The mailspool modules ``module`` imports at run time."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for branch in child.orelse:
                    visit(branch)
                continue
            if isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parent = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join([*parent, base] if base else parent)
                for alias in child.names:
                    found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
            elif isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            visit(child)

    visit(ast.parse(path.read_text()))
    return {name for name in found if name in MODULES and name != module}


GRAPH = {module: imported(module) for module in MODULES}


def test_every_folder_imports_only_the_layers_below_it() -> None:
    wrong = []
    for module, targets in GRAPH.items():
        where = folder(module)
        if where in ENTRY or (where == FLAT and module == "mailspool.__main__"):
            continue
        allowed = BELOW[where] | {where}
        wrong.extend(f"{module} -> {t}" for t in sorted(targets) if folder(t) not in allowed)
    assert wrong == []


def test_the_table_names_every_folder() -> None:
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == (set(BELOW) | ENTRY) - {FLAT, "mailspool"}


def cycles() -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in GRAPH[node]:
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in GRAPH:
        if node not in index:
            connect(node)
    return found


def test_no_module_imports_one_that_imports_it_back() -> None:
    assert cycles() == []


def test_the_checker_sees_a_circle() -> None:
    """The check itself: a circle added to the graph is found."""
    GRAPH["mailspool.errors"].add("mailspool.message")
    try:
        assert any({"mailspool.errors", "mailspool.message"} <= set(c) for c in cycles())
    finally:
        GRAPH["mailspool.errors"].discard("mailspool.message")


def test_no_module_over_450_lines_and_no_function_over_60() -> None:
    """Small modules with one job: a module that grows past 450 lines is split, a
    function past 60 is cut into named steps."""
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        assert len(text.splitlines()) <= 450, path
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert (node.end_lineno or 0) - node.lineno < 60, (path, node.name)
