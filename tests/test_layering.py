"""DESIGN.md's one-way imports: protocols <- processors <- storage <- gateway, api <- fieldtrack;
protocols and processors do no I/O; api never imports gateway; simulators use protocols only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = {"protocols", "processors", "storage", "gateway", "api", "simulators", "fieldtrack"}
ALLOWED = {
    "protocols": {"protocols"},
    "processors": {"protocols", "processors"},
    "storage": {"protocols", "processors", "storage"},
    "gateway": {"protocols", "processors", "storage", "gateway"},
    "api": {"protocols", "processors", "storage", "api"},
    "simulators": {"protocols", "simulators"},
    "fieldtrack": OURS,
}
NO_IO = {"asyncio", "socket", "logging", "psycopg", "psycopg_pool", "os", "subprocess", "threading",
         "uvicorn", "fastapi", "starlette", "httpx"}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_flow_one_way(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"{package}/ has no modules"
    for f in files:
        ours = imports_of(f) & OURS
        wrong = ours - ALLOWED[package]
        assert not wrong, f"{f.relative_to(ROOT)} imports {sorted(wrong)}"
        if package in ("protocols", "processors"):
            io = imports_of(f) & NO_IO
            assert not io, f"{f.relative_to(ROOT)} does I/O through {sorted(io)}"
