"""ARCHITECTURE.md's rule that every front end comes in through the facade: nothing under bot/
(but the benchmarks) or handlers/ opens a unit of work or touches a session itself. (The import
direction is checked by import-linter's contracts in pyproject.toml, run by .ci/run.)"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support import ROOT

FORBIDDEN_CALLS = {"reading", "unit", "unit_keeping"}  # services.facade.FacadeBase: the services' own


def front_end_files() -> list[Path]:
    files = [*ROOT.glob("bot/**/*.py"), *ROOT.glob("handlers/**/*.py")]
    return sorted(f for f in files if "bench" not in f.relative_to(ROOT).parts)


def reaches_past_the_facade(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in FORBIDDEN_CALLS:
            found.append(f"line {node.lineno}: .{node.func.attr}(...)")
        if isinstance(node, ast.Attribute) and node.attr == "session" and isinstance(node.value, ast.Name) \
                and node.value.id == "ctx":
            found.append(f"line {node.lineno}: ctx.session")
    return found


def test_the_check_sees_a_front_end_that_opens_a_unit() -> None:
    assert reaches_past_the_facade("async def f(kz):\n    async with kz.reading() as ctx:\n"
                                   "        await ctx.session.execute(1)\n") == ["line 2: .reading(...)",
                                                                               "line 3: ctx.session"]


def test_front_ends_call_the_facade_only() -> None:
    assert front_end_files()
    offenders = {str(f.relative_to(ROOT)): found for f in front_end_files()
                 if (found := reaches_past_the_facade(f.read_text(encoding="utf-8")))}
    assert not offenders, offenders
