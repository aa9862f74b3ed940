"""Test modules share helpers through tests/support only: none imports another test module.

A helper imported from another test module ties the two together: moving, renaming or splitting
the one breaks the other, and the importer gets the other's fixtures and tests in its namespace
by surprise. What more than one module needs lives in tests/support, fixtures included
(tests/conftest.py makes those available by name).
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def imports_of(source: str, package: str) -> list[str]:
    """Every module a module of ``package`` with text ``source`` imports, relative imports resolved;
    ``from a import b`` counts as both a and a.b, since b may be a module."""
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = ".".join(parts[:len(parts) - node.level + 1])
                base = f"{anchor}.{base}" if base else anchor
            names += [base, *(f"{base}.{alias.name}" for alias in node.names)]
    return names


def forbidden(name: str) -> bool:
    """A test module or a conftest (by any path), or a part of the suite other than tests.support."""
    parts = name.split(".")
    return (any(part.startswith("test_") or part == "conftest" for part in parts)
            or (parts[0] == "tests" and len(parts) > 1 and parts[1] != "support"))


def test_test_modules_import_helpers_from_tests_support_only() -> None:
    # The check itself first: it must see each form such an import takes, and let tests.support through.
    stages = "tests.stages"
    assert forbidden("tests.test_live") and forbidden("tests.stages.test_live_view_end_to_end")
    assert forbidden("test_live") and forbidden("tests.conftest") and forbidden("tests.unit")
    assert not any(map(forbidden, ["tests", "tests.support", "tests.support.web", "pipeline.web.hub", "pytest"]))
    assert "tests.stages.test_gateway_fanout.LiveClient" in imports_of(
        "from .test_gateway_fanout import LiveClient\n", stages)
    assert "tests.unit.test_gateway_hub" in imports_of("from ..unit import test_gateway_hub\n", stages)
    assert imports_of("from ..support import web\n", stages) == ["tests.support", "tests.support.web"]

    wrong = {}
    for path in sorted(TESTS.rglob("*.py")):
        package = ".".join(path.relative_to(TESTS.parent).parent.parts)
        found = sorted({name for name in imports_of(path.read_text(), package) if forbidden(name)})
        if found:
            wrong[str(path.relative_to(TESTS.parent))] = found
    assert wrong == {}, f"imports of test modules (move what they need to tests/support): {wrong}"
