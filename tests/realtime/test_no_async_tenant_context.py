"""No schema or tenant context in async code (issue 18, item 2): the shared database thread may run
another tenant's call between two awaits, so a context entered in a coroutine guards nothing.
Every async function of the realtime code is read; none may call ``schema_context``,
``tenant_context``, ``set_tenant``, ``set_schema`` or ``set_schema_to_public``."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [
    *sorted((ROOT / "platform" / "realtime").rglob("*.py")),
    ROOT / "clinical" / "realtime.py",
    ROOT / "settings" / "asgi.py",
]
FORBIDDEN = {
    "schema_context",
    "tenant_context",
    "set_tenant",
    "set_schema",
    "set_schema_to_public",
    "activate_tenant",
    "activate_public",
}


def _called_names(node: ast.AST) -> set[str]:
    names: set[str] = set()
    for child in ast.walk(node):
        if isinstance(child, ast.Call):
            func = child.func
            if isinstance(func, ast.Name):
                names.add(func.id)
            elif isinstance(func, ast.Attribute):
                names.add(func.attr)
    return names


def offenders(source: str, filename: str = "<test>") -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.AsyncFunctionDef):
            bad = _called_names(node) & FORBIDDEN
            if bad:
                found.append(f"{filename}:{node.lineno} {node.name}: {sorted(bad)}")
    return found


def test_no_async_function_enters_a_schema_or_tenant_context() -> None:
    assert len(SOURCES) > 5
    problems = [p for path in SOURCES for p in offenders(path.read_text(), str(path))]
    assert problems == []


def test_the_check_catches_a_context_around_an_await() -> None:
    bad = """
async def handler(tenant):
    with tenant_context(tenant):
        await something()
"""
    assert offenders(bad) == ["<test>:2 handler: ['tenant_context']"]
    good = """
def work(tenant):
    with tenant_context(tenant):
        return 1
"""
    assert offenders(good) == []
