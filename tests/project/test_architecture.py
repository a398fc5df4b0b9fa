"""ARCHITECTURE.md's rule that every front end comes in through the facade: nothing under bot/
(but the benchmarks) or handlers/ opens a unit of work or touches a session itself. (The import
direction is checked by import-linter's contracts in pyproject.toml, run by .ci/run.)

And the tests' own rule: a test module imports nothing of tests/ but tests/support (fixtures come
from the conftest.py files, which import only tests/support too), so that a test file can be moved,
renamed or deleted without breaking another one."""

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


# --- the tests import only tests/support ------------------------------------------------------------

TESTS = ROOT / "tests"


def imports_of_tests(source: str) -> list[str]:
    """The imports of ``source`` that reach into tests/ outside tests/support (relative ones too)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                found.append(f"line {node.lineno}: from {'.' * node.level}{node.module or ''} import ...")
                continue
            module = node.module or ""
            names = [f"{module}.{a.name}" for a in node.names] if module == "tests" else [module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            if (name == "tests" or name.startswith("tests.")) and not (
                    name == "tests.support" or name.startswith("tests.support.")):
                found.append(f"line {node.lineno}: {name}")
    return found


def test_the_check_sees_a_test_module_imported_by_another() -> None:
    source = ("from tests.handlers.test_start import Harness\n"
              "from tests.conftest import World\n"
              "from tests import test_cli\n"
              "import tests.bot.api.test_api\n"
              "from .test_link import links\n"
              "from tests.support.world import World\n"
              "from tests.support import ROOT\n"
              "from tests import support\n")
    assert imports_of_tests(source) == ["line 1: tests.handlers.test_start", "line 2: tests.conftest",
                                        "line 3: tests.test_cli", "line 4: tests.bot.api.test_api",
                                        "line 5: from .test_link import ..."]


def test_test_modules_import_only_the_support_package() -> None:
    files = sorted(TESTS.rglob("*.py"))
    assert any(f.name.startswith("test_") for f in files)
    offenders = {str(f.relative_to(ROOT)): found for f in files
                 if (found := imports_of_tests(f.read_text(encoding="utf-8")))}
    assert not offenders, offenders
