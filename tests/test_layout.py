"""The package's layout is its data flow: the decision core depends on nothing that does
I/O, and no two modules import each other (an import circle hides which one is the base)."""
from __future__ import annotations

import ast

from tests.conftest import REPO

PACKAGES = ("triage", "channels")


def _imports() -> dict[str, set[str]]:
    """Every module of the project and the project modules it imports, anywhere in it
    (functions and ``TYPE_CHECKING`` blocks included: a circle there is still a circle)."""
    modules = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
            modules[name] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            found |= {t for t in targets if t in modules and t != name}
        graph[name] = found
    return graph


def test_the_decision_core_imports_only_itself_and_the_configuration():
    allowed = ("triage.core", "triage.config", "triage")
    for module, targets in _imports().items():
        if module.startswith("triage.core"):
            outside = {t for t in targets if not t.startswith(allowed[0]) and t not in allowed[1:]}
            assert not outside, f"{module} reaches outside the core: {sorted(outside)}"


def test_no_module_imports_itself_through_others():
    graph = _imports()
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                circle = path[path.index(target):] + [target]
                raise AssertionError("import circle: " + " → ".join(circle))
            if target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)


def test_every_package_folder_is_named_in_pyproject():
    text = (REPO / "pyproject.toml").read_text("utf-8")
    for package in PACKAGES:
        for init in (REPO / package).rglob("__init__.py"):
            dotted = ".".join(init.parent.relative_to(REPO).parts)
            assert f'"{dotted}"' in text, f"{dotted} is not packaged: add it to pyproject.toml"
