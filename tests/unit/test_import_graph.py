"""The layering, checked on the source: no import circle between the project's modules (nor between
the subpackages of services/); services/, models/ and core/ import no process package (worker/,
cli/, web/, tasks/), and the worker imports neither the CLI nor the web process. Imports inside
functions count: a lazy import is still a dependency."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("services", "models", "core", "tasks", "worker", "cli", "web")
NEUTRAL = ("services", "models", "core")
PROCESS_PACKAGES = ("worker", "cli", "web", "tasks")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    found = {}
    for top in PACKAGES:
        for path in (ROOT / top).rglob("*.py"):
            if "migrations" in path.parts and path.name != "env.py":
                continue
            found[module_name(path)] = path
    return found


def imported(name: str, path: Path, known: set[str] | frozenset = frozenset()) -> set[str]:
    """Every module this module imports, by absolute name: `from a import b` names `a.b` when
    that is a module (of `known`), else `a`."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                names.add(f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source)
    return names


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: {m for m in imported(name, path, set(mods)) if m in mods and m != name} for name, path in mods.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_checker_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle_between_modules():
    assert cycles(graph()) == []


def test_no_circle_between_the_subpackages_of_services():
    def group(module: str) -> str:  # services.booking.submit -> services.booking; others stay modules
        parts = module.split(".")
        return ".".join(parts[:2]) if parts[0] == "services" else module

    edges: dict[str, set[str]] = {}
    for source, targets in graph().items():
        edges.setdefault(group(source), set()).update(group(t) for t in targets if group(t) != group(source))
    assert cycles(edges) == []


def forbidden_imports(importers: tuple[str, ...], imported_packages: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{name} imports {m}" for name, path in modules().items() if name.split(".")[0] in importers
        for m in imported(name, path) if m.split(".")[0] in imported_packages
    )


def test_no_process_package_is_imported_by_services_models_or_core():
    assert forbidden_imports(NEUTRAL, PROCESS_PACKAGES) == []


def test_the_worker_imports_neither_the_cli_nor_the_web_process():
    assert forbidden_imports(("worker", "tasks"), ("cli", "web")) == []
