"""``pip install .`` gives a working Kezek: the wheel carries everything ``kezek`` reads beside the
code (the ru/kk catalogs, the migrations, the e-mail templates).

The wheel is built from a copy of the sources (no ``build/`` left in the checkout), installed in
a fresh virtual environment with its declared dependencies only, and run from outside the source
tree: ``kezek --lang kk db upgrade`` (the migrations) and ``kezek --lang kk queue show`` (a
localized refusal) must answer in Kazakh. This is the suite's (and so CI's, ``.ci/run``) check of
the wheel; it takes a minute or more (a virtual environment and some 50 wheels).

The dependencies' wheels are kept between runs in a wheelhouse (``KEZEK_WHEELHOUSE``, by default
``<temp>/kezek-wheelhouse``): the install is offline from it and, when it lacks something (the first
run, a new dependency), it is filled from the package index with ``pip download`` and tried again."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

from locales import LOCALES_DIR, gettext, po_path
from tests.support import ROOT

SOURCES = ("pyproject.toml", "README.md", "bot", "handlers", "services", "storage", "locales")
WHEELHOUSE = Path(os.environ.get("KEZEK_WHEELHOUSE") or Path(tempfile.gettempdir()) / "kezek-wheelhouse")
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
MINUTES = 15 * 60  # a bound on each pip step (a busy machine, a slow index)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX paths of a virtual environment")


def run(args: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=MINUTES)


def offline_then_online(args: list[str], fill: list[str], cwd: Path) -> None:
    """``args`` with ``--no-index --find-links WHEELHOUSE``; if that fails, ``pip download`` of
    ``fill`` into the wheelhouse and ``args`` again."""
    offline = [*args, "--no-index", "--find-links", str(WHEELHOUSE)]
    if run(offline, cwd=cwd).returncode == 0:
        return
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    got = run([*PIP, "download", "-q", "-d", str(WHEELHOUSE), *fill], cwd=cwd)
    assert got.returncode == 0, got.stdout[-3000:] + got.stderr[-3000:]
    for own in WHEELHOUSE.glob("kezek-*.whl"):  # (pip download copies the wheel itself there too)
        own.unlink()
    done = run(offline, cwd=cwd)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_the_installed_wheel_speaks_kazakh_outside_the_source_tree(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    junk = shutil.ignore_patterns("__pycache__", "*.pyc", "*.mo", "*.egg-info")
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, src / name, ignore=junk)
        else:
            shutil.copy2(source, src / name)
    dist = tmp_path / "dist"
    # The wheel, built in an isolated environment with the build requirements of pyproject.toml.
    offline_then_online([*PIP, "wheel", "-q", "--no-deps", "-w", str(dist), str(src)],
                        ["setuptools>=69", "wheel"], tmp_path)
    [wheel] = dist.glob("kezek-*.whl")
    venv = tmp_path / "venv"
    made = run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    # Into the fresh environment: the wheel and what it declares, nothing of this checkout.
    offline_then_online([*PIP, "--python", str(python), "install", "-q", str(wheel)], [str(wheel)], tmp_path)

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEZEK_", "PYTHON", "VIRTUAL_ENV"))}
    env["MPLCONFIGDIR"] = str(tmp_path / "matplotlib")
    where = run([str(python), "-c", "import bot, locales; print(bot.__file__); print(locales.__file__)"],
                cwd=outside, env=env)
    assert where.returncode == 0, where.stderr
    assert all(str(venv) in line and str(ROOT) not in line for line in where.stdout.split()), where.stdout

    kezek = str(venv / "bin" / "kezek")
    db = f"sqlite:///{tmp_path / 'kezek.sqlite3'}"
    upgraded = run([kezek, "--lang", "kk", "--db", db, "db", "upgrade"], cwd=outside, env=env)
    assert upgraded.returncode == 0, upgraded.stderr[-3000:]
    assert upgraded.stdout.strip() == gettext("kk", "The database schema is up to date.")
    assert upgraded.stdout.strip() != gettext("ru", "The database schema is up to date.")
    refused = run([kezek, "--lang", "kk", "--db", db, "queue", "show", "NO-SUCH"], cwd=outside, env=env)
    assert refused.returncode == 1, refused.stderr[-3000:]
    not_found = "The application was not found. Please check the number."
    assert refused.stderr.strip() == gettext("kk", not_found) != gettext("ru", not_found)
    assert "Traceback" not in refused.stderr + upgraded.stderr
    assert not list(outside.iterdir())  # nothing written where it was run

    # The product only: the benchmarks, the load driver and the Bot API stand-in stay in the checkout.
    with zipfile.ZipFile(wheel) as archive:
        shipped = [name for name in archive.namelist() if name.startswith("bot/")]
    assert shipped and not [name for name in shipped if name.startswith("bot/bench")], shipped
    helped = run([kezek, "--help"], cwd=outside, env=env)
    assert helped.returncode == 0 and "demo" in helped.stdout and "bench" not in helped.stdout, helped.stdout


def test_the_catalogs_are_found_through_the_locales_package() -> None:
    import locales

    assert LOCALES_DIR == Path(locales.__file__).resolve().parent == ROOT / "locales"
    assert po_path("kk").is_file()
