"""Layers point one way (docs/architecture.md): entry points → connector/ → accounting/ → integrations/.

The check reads every import statement, function-local ones included, so a "temporary" upward import inside a
function fails here just like one at the top of a module.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Entry points may import anything: they sit above every layer even when they live in a lower package's folder.
ENTRY_POINTS = ("accounting/admin.py", "accounting/migrations/", "accounting/management/")

# For each package: the top-level packages (or exact modules) it must never import.
FORBIDDEN = {
    "integrations": ("django", "connector", "accounting"),
    "accounting": ("connector",),
}
# The one thing accounting may use from above: the shared tenant (and webhook event) model.
ALLOWED = {"accounting": ("connector.models",)}


def imported_modules(source: str, module: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``source``; relative imports resolved against ``module``."""
    found = []
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((node.lineno, name))
    return found


def violations(package: str, source: str, module: str) -> list[str]:
    problems = []
    for line, name in imported_modules(source, module):
        if any(name == a or name.startswith(a + ".") for a in ALLOWED.get(package, ())):
            continue
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[package]):
            problems.append(f"{module}:{line} imports {name}")
    return problems


def test_lower_layers_never_import_upward():
    problems = []
    for package in FORBIDDEN:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative.startswith(ENTRY_POINTS):
                continue
            module = relative[:-3].replace("/", ".")
            problems += violations(package, path.read_text(), module)
    assert problems == []


def test_the_check_sees_an_upward_import_even_inside_a_function():
    source = "def deliver():\n    from connector.tasks import enqueue_posting\n"
    assert violations("accounting", source, "accounting.posting") == [
        "accounting.posting:2 imports connector.tasks"
    ]
    assert violations(
        "integrations", "from ..errors import X\nimport django.conf\n", "integrations.sagex3.soap"
    ) == ["integrations.sagex3.soap:2 imports django.conf"]
    assert violations("accounting", "from connector.models import Tenant\n", "accounting.models") == []


def test_relative_imports_resolve_to_their_package():
    assert imported_modules("from . import tasks\nfrom .models import X\n", "connector.pipeline") == [
        (1, "connector"),
        (2, "connector.models"),
    ]
