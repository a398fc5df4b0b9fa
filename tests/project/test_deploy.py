"""The deployment files of bot/deploy/ against the code they deploy.

Each file is checked by the tool that will read it, where this machine has it: the compose file by
PyYAML and the real ``kezek`` command parser, the settings it and the env example name by
``bot.config.Settings``, the systemd units by ``systemd-analyze verify``, nginx.conf by ``nginx -t``,
the backup script by running it against PostgreSQL and restoring what it wrote. A tool that is
missing skips its test with the reason; nothing here builds an image or needs Docker."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import click
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.api.base import MIN_TOKEN_LENGTH
from bot.cli.main import cli
from bot.config import Settings
from bot.web.page import make_page_app
from services.kezek import Kezek
from storage.db import normalise_url
from tests.support import ROOT
from tests.support.databases import PG_URL

DEPLOY = ROOT / "bot" / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / "kezek.env.example"
DOCKERFILE = DEPLOY / "Dockerfile"
NGINX = DEPLOY / "nginx.conf"
UNIT = DEPLOY / "kezek@.service"
UNITS = [UNIT, DEPLOY / "kezek-migrate.service", DEPLOY / "kezek-backup.service", DEPLOY / "kezek-backup.timer"]
BACKUP = DEPLOY / "backup.sh"
GUIDE = DEPLOY / "README.md"
# Where the units expect the checkout (and its virtualenv).
INSTALL = "/opt/kezek"

# What a webhook deployment of several instances cannot run without.
REQUIRED = {"KEZEK_BOT_TOKEN", "KEZEK_WEBHOOK_URL", "KEZEK_WEBHOOK_SECRET", "KEZEK_DATABASE_URL",
            "KEZEK_REDIS_URL", "KEZEK_API_TOKEN"}


# --- helpers --------------------------------------------------------------------------------------

def parse_cli(args: list[str]) -> tuple[str, dict[str, Any]]:
    """Parse ``kezek ARGS`` with the real command tree, down to the command that would run, without
    running anything. Returns the command's path (``"db upgrade"``) and its parameters; a bad
    command or option raises ``click.UsageError``."""
    ctx = cli.make_context("kezek", list(args))
    command: click.Command = cli
    path: list[str] = []
    while isinstance(command, click.Group):
        rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
        if not rest:
            raise click.UsageError(f"no command after {' '.join(path) or 'kezek'}")
        name, sub, rest = command.resolve_command(ctx, rest)
        assert sub is not None and name is not None
        path.append(name)
        ctx = sub.make_context(name, rest, parent=ctx)
        command = sub
    return " ".join(path), ctx.params


def kezek_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The compose services that run the Kezek image."""
    return {name: svc for name, svc in compose["services"].items()
            if str(svc.get("image", "")).startswith("kezek") or "build" in svc}


def load_compose() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed in this environment")
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def env_assignments(path: Path) -> tuple[dict[str, str], set[str]]:
    """The ``KEY=value`` lines of an env file, and the keys only shown in comments (``# KEY=``)."""
    active: dict[str, str] = {}
    commented: set[str] = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if match := re.fullmatch(r"([A-Z][A-Z0-9_]*)=(.*)", stripped):
            active[match[1]] = match[2]
        elif match := re.fullmatch(r"#\s*([A-Z][A-Z0-9_]*)=.*", stripped):
            commented.add(match[1])
    return active, commented


def unit_values(path: Path, key: str) -> list[str]:
    return [line.split("=", 1)[1].strip() for line in path.read_text(encoding="utf-8").splitlines()
            if line.startswith(f"{key}=")]


def kezek_executable() -> Path:
    exe = Path(sys.executable).parent / "kezek"
    if not exe.exists():
        pytest.skip(f"the kezek console script is not installed next to {sys.executable}")
    return exe


def setting_names() -> set[str]:
    return {f"KEZEK_{name.upper()}" for name in Settings.model_fields}


def clean_settings(monkeypatch: pytest.MonkeyPatch, **values: Any) -> Settings:
    """Settings from ``values`` (or an env file) alone: this process's KEZEK_* variables and any .env
    in the working directory are left out."""
    for key in list(os.environ):
        if key.startswith("KEZEK_"):
            monkeypatch.delenv(key)
    return Settings(**values)


# --- the command parser the files are checked with can fail ---------------------------------------

def test_the_parser_refuses_what_kezek_refuses() -> None:
    assert parse_cli(["db", "upgrade"]) == ("db upgrade", {})
    assert parse_cli(["--lang", "kk", "run", "--no-api"])[1]["api_on"] is False
    for bad in (["run", "--no-such-flag"], ["frobnicate"], ["db"], ["--lang", "en", "run"],
                ["outbox", "send", "extra"]):
        with pytest.raises(click.UsageError):
            parse_cli(bad)


# --- compose --------------------------------------------------------------------------------------

def test_compose_runs_two_webhook_instances_after_one_migration() -> None:
    compose = load_compose()
    services = compose["services"]
    assert {"postgres", "redis", "nginx", "migrate"} <= set(services)
    assert parse_cli(services["migrate"]["command"]) == ("db upgrade", {})

    instances = {name: svc for name, svc in kezek_services(compose).items() if name != "migrate"}
    assert len(instances) >= 2, "two or more instances"
    for name, svc in instances.items():
        command, params = parse_cli(svc["command"])
        assert command == "run", name
        assert params["bot_on"] is True, f"{name}: every instance serves the webhook"
        env = svc["environment"]
        assert env["KEZEK_REDIS_URL"].startswith("redis://redis:"), f"{name}: one Redis for all"
        # Inside a container the servers must listen beyond loopback for nginx to reach them.
        assert env["KEZEK_WEBHOOK_HOST"] == "0.0.0.0" and env["KEZEK_API_HOST"] == "0.0.0.0"
        assert env["KEZEK_PAGE_HOST"] == "0.0.0.0", f"{name}: nginx reaches the referral page"
        assert f"server {name}:{env['KEZEK_PAGE_PORT']}" in NGINX.read_text(encoding="utf-8"), name
        assert svc["env_file"] == "kezek.env" or "kezek.env" in svc["env_file"]
        assert svc["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert svc["depends_on"]["postgres"]["condition"] == "service_healthy"
        upstream = f"server {name}:{env['KEZEK_WEBHOOK_PORT']}"
        assert upstream in NGINX.read_text(encoding="utf-8"), f"nginx does not send updates to {name}"
    # Telegram's limits are paced per sender process: together the instances stay within them.
    active, _ = env_assignments(ENV_EXAMPLE)
    senders = [svc for svc in instances.values() if parse_cli(svc["command"])[1]["senders_on"]]

    def rate(svc: dict[str, Any], key: str) -> float:
        default = Settings.model_fields[key.removeprefix("KEZEK_").lower()].default
        return float(svc["environment"].get(key, active.get(key, default)))

    assert sum(rate(svc, "KEZEK_TELEGRAM_RATE") for svc in senders) <= 30
    assert sum(rate(svc, "KEZEK_TELEGRAM_CHAT_RATE") for svc in senders) <= 1
    # No secret in the compose file itself: they come from kezek.env and secrets/.
    raw = COMPOSE.read_text(encoding="utf-8")
    for key in ("KEZEK_BOT_TOKEN", "KEZEK_WEBHOOK_SECRET", "KEZEK_API_TOKEN", "KEZEK_SMTP_PASSWORD",
                "KEZEK_DATABASE_URL", "POSTGRES_PASSWORD:"):
        assert key not in raw, f"{key} belongs in kezek.env or a secret file, not in compose.yaml"


def test_every_setting_the_deploy_files_name_exists() -> None:
    names = setting_names()
    mentioned: dict[str, set[str]] = {}
    for path in [COMPOSE, ENV_EXAMPLE, DOCKERFILE, NGINX, BACKUP, GUIDE, *UNITS]:
        for var in re.findall(r"\bKEZEK_[A-Z0-9_]+", path.read_text(encoding="utf-8")):
            mentioned.setdefault(var.rstrip("_"), set()).add(path.name)
    # The guide and the env example talk about families: KEZEK_SMTP_* etc. Only whole names count.
    unknown = {var: sorted(files) for var, files in mentioned.items()
               if var not in names and not var.endswith("_")}
    # The test suite's own variable may be quoted in the guide's "checked by" line.
    unknown.pop("KEZEK_TEST_POSTGRES_URL", None)
    assert not unknown, f"not settings of bot/config.py: {unknown}"


def test_the_env_example_names_every_required_setting_and_makes_a_valid_webhook_deployment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    active, commented = env_assignments(ENV_EXAMPLE)
    assert set(active) >= REQUIRED, f"missing: {sorted(REQUIRED - set(active))}"
    assert set(active) | commented <= setting_names()
    settings = clean_settings(monkeypatch, _env_file=ENV_EXAMPLE)
    assert settings.webhook_mode and settings.webhook_problem() is None
    assert len(settings.api_token) >= MIN_TOKEN_LENGTH
    assert settings.database_url.startswith("postgresql://"), "several instances need PostgreSQL"
    assert settings.redis_url.startswith("redis://")
    assert settings.sandbox is False
    # The placeholders are placeholders: nobody deploys them by accident unnoticed.
    for key in ("KEZEK_BOT_TOKEN", "KEZEK_WEBHOOK_SECRET", "KEZEK_API_TOKEN", "KEZEK_SMTP_PASSWORD",
                "KEZEK_DATABASE_URL"):
        assert "replace" in active[key], key


def test_the_env_example_reads_the_same_in_a_shell(tmp_path: Path) -> None:
    """The guide's helpers `set -a; . kezek.env` it; systemd and compose read it as KEY=value."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed here")
    out = subprocess.run([bash, "-c", 'set -a; . "$0"; env -0', str(ENV_EXAMPLE)], capture_output=True,
                         check=True, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")}).stdout.decode()
    shell = dict(item.split("=", 1) for item in out.split("\0") if item.startswith("KEZEK_"))
    active, _ = env_assignments(ENV_EXAMPLE)
    assert shell == {key: value.strip('"') for key, value in active.items()}


# --- the webhook server and nginx -----------------------------------------------------------------

def webhook_routes(settings: Settings) -> set[str]:
    from aiogram import Bot, Dispatcher

    from bot.telegram.webhook import build_webhook_app

    app = build_webhook_app(Dispatcher(), Bot("42:TEST"), settings)
    return {resource.canonical for resource in app.router.resources()}


def server_blocks(conf: str) -> dict[str, str]:
    """The ``server { ... }`` blocks of nginx.conf by their first ``listen`` port."""
    blocks: dict[str, str] = {}
    for match in re.finditer(r"\bserver\s*\{", conf):
        depth, i = 1, match.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(conf[i], 0)
            i += 1
        body = conf[match.end():i - 1]
        listen = re.search(r"listen\s+(\d+)", body)
        assert listen, body
        blocks[listen[1]] = body
    return blocks


def test_nginx_exposes_only_the_webhook_and_health_publicly(monkeypatch: pytest.MonkeyPatch) -> None:
    active, _ = env_assignments(ENV_EXAMPLE)
    settings = clean_settings(monkeypatch, webhook_url="https://bot.example.kz", webhook_secret="s",
                              webhook_path=active.get("KEZEK_WEBHOOK_PATH", "/telegram/webhook"))
    routes = webhook_routes(settings)
    conf = NGINX.read_text(encoding="utf-8")
    public = server_blocks(conf)["443"]
    locations = re.findall(r"location\s+=\s+(\S+)\s*\{", public)
    assert set(locations) == {settings.webhook_path, "/healthz", "/r"}
    # The referral page (bot/web/page.py): /r (the form) and /r/<code>, GET only, the client's
    # address passed on for the page's per-client limit.
    page_routes = {r.canonical for r in make_page_app(Kezek.__new__(Kezek), settings).router.resources()}
    prefixes = re.findall(r"location\s+(/\S*)\s*\{", public)
    assert set(prefixes) == {"/", "/r/"}
    assert {"/r", "/r/{code}"} <= page_routes
    assert set(locations) <= routes | page_routes, f"nginx forwards to routes no server has: {routes}"
    page = re.search(r"location\s+/r/\s*\{(.*?)\n\s*\}", public, re.S)
    assert page and "limit_except GET" in page[1] and "proxy_set_header X-Real-IP $remote_addr" in page[1]
    assert re.search(r"location\s+/\s*\{\s*return 404;", public), "everything else must be refused"
    assert "ssl_certificate " in public and "client_max_body_size" in public
    assert "proxy_set_header X-Telegram-Bot-Api-Secret-Token $http_x_telegram_bot_api_secret_token" in public
    assert "/metrics" not in public and "/api/" not in public
    internal = server_blocks(conf)["8081"]
    assert "deny all;" in internal and "location /api/" in internal
    assert re.search(r"client_max_body_size\s+16m", internal), "KEZEK_API_MAX_BODY_BYTES' default"


def test_nginx_accepts_the_configuration(tmp_path: Path) -> None:
    nginx = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)
    if nginx is None:
        pytest.skip("nginx is not installed here (apt-get install nginx-light to run this check)")
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed here: no certificate to test the TLS server with")
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test",
                    "-keyout", str(tmp_path / "privkey.pem"), "-out", str(tmp_path / "fullchain.pem")],
                   check=True, capture_output=True)
    # Only what exists in the compose network alone changes: the instances' names, the TLS files
    # and the log folder.
    conf = NGINX.read_text(encoding="utf-8")
    conf = re.sub(r"\bkezek-(\d+):", "127.0.0.1:", conf)
    conf = conf.replace("/etc/nginx/tls/", f"{tmp_path}/").replace("/var/log/nginx/", f"{tmp_path}/")
    (tmp_path / "nginx.conf").write_text(conf, encoding="utf-8")
    result = subprocess.run([nginx, "-t", "-p", f"{tmp_path}/", "-c", str(tmp_path / "nginx.conf"),
                             "-g", f"pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log;"],
                            capture_output=True, text=True, timeout=60)
    if result.returncode and os.geteuid() != 0 and "Permission denied" in result.stderr:
        pytest.skip(f"nginx -t needs root for its temp folders here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr


# --- systemd --------------------------------------------------------------------------------------

def test_the_units_start_real_commands() -> None:
    (start,) = unit_values(UNIT, "ExecStart")
    exe, *args = shlex.split(start)
    assert exe == f"{INSTALL}/.venv/bin/kezek"
    command, params = parse_cli(args)
    assert command == "run" and params["bot_on"] and params["api_on"] and params["scheduler_on"]
    (migrate,) = unit_values(DEPLOY / "kezek-migrate.service", "ExecStart")
    assert parse_cli(shlex.split(migrate)[1:]) == ("db upgrade", {})
    assert "kezek-migrate.service" in unit_values(UNIT, "Requires")
    (backup,) = unit_values(DEPLOY / "kezek-backup.service", "ExecStart")
    script = ROOT / Path(backup).relative_to(INSTALL)
    assert script == BACKUP and os.access(BACKUP, os.X_OK), "the backup unit runs bot/deploy/backup.sh"
    # Secrets come from the env file only.
    for unit in UNITS:
        body = unit.read_text(encoding="utf-8")
        for key in ("KEZEK_BOT_TOKEN", "KEZEK_WEBHOOK_SECRET", "KEZEK_API_TOKEN", "KEZEK_SMTP_PASSWORD",
                    "KEZEK_DATABASE_URL"):
            assert f"{key}=" not in body, f"{key} in {unit.name}"
    for option in ("NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                   "ReadWritePaths=/var/lib/kezek", "EnvironmentFile=/etc/kezek/kezek.env"):
        assert option in UNIT.read_text(encoding="utf-8"), option


def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here")
    exe = kezek_executable()
    for unit in UNITS:
        body = unit.read_text(encoding="utf-8")
        body = body.replace(f"{INSTALL}/.venv/bin/kezek", str(exe)).replace(f"{INSTALL}/bot/deploy/", f"{DEPLOY}/")
        (tmp_path / unit.name).write_text(body, encoding="utf-8")
    names = ["kezek@1.service", "kezek@2.service", "kezek-migrate.service", "kezek-backup.service",
             "kezek-backup.timer"]
    result = subprocess.run([analyze, "verify", "--man=no", *(str(tmp_path / n) for n in names)],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    output = result.stdout + result.stderr
    if result.returncode and ("Failed to initialize" in output or "No such file or directory" in output
                              and "not executable" not in output):
        pytest.skip(f"systemd-analyze cannot verify here: {output.strip()[:300]}")
    assert result.returncode == 0, output
    problems = [line for line in output.splitlines()
                if re.search(r"Unknown (key|section|lvalue)|Failed to parse|Invalid|not executable|ignoring", line)]
    assert not problems, problems


# --- the image ------------------------------------------------------------------------------------

def dockerfile_instructions() -> list[tuple[str, str]]:
    text_ = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
            for line in (raw.strip() for raw in text_.splitlines()) if line and not line.startswith("#")]


def test_the_image_runs_a_real_command() -> None:
    instructions = dockerfile_instructions()
    entry = [json.loads(arg) for op, arg in instructions if op == "ENTRYPOINT"]
    cmd = [json.loads(arg) for op, arg in instructions if op == "CMD"]
    assert entry == [["kezek"]] and len(cmd) == 1
    scripts = re.search(r"\[project\.scripts\]\s*\n(.*?)\n\s*\n", (ROOT / "pyproject.toml").read_text(), re.S)
    assert scripts and re.search(r'^kezek\s*=\s*"bot\.cli:main"', scripts[1], re.M), "kezek is the console script"
    assert parse_cli(cmd[0])[0] == "run"
    # Every COPY source from the checkout exists, and the image installs the wheel built from them
    # (it carries the catalogs: tests/project/test_wheel.py), not an editable tree.
    copied = [arg.split()[:-1] for op, arg in instructions if op == "COPY" and not arg.startswith("--from=")]
    for sources in copied:
        for source in sources:
            assert (ROOT / source).exists(), source
    assert ["locales"] in copied
    assert any(op == "RUN" and "pip wheel" in arg for op, arg in instructions)
    assert any(op == "RUN" and re.search(r"pip install \S+\.whl", arg) for op, arg in instructions)
    assert not any(op == "RUN" and "pip install -e" in arg for op, arg in instructions)
    froms = [arg for op, arg in instructions if op == "FROM"]
    assert len(froms) == 2 and " AS " in froms[0].upper() and " AS " not in froms[1].upper()
    assert any(op == "USER" and arg.strip() not in ("root", "0") for op, arg in instructions)
    health = next(arg for op, arg in instructions if op == "HEALTHCHECK")
    assert "/healthz" in health and "KEZEK_WEBHOOK_PORT" in health


# --- backups --------------------------------------------------------------------------------------

async def _admin(sql: str) -> None:
    assert PG_URL
    engine = create_async_engine(normalise_url(PG_URL), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


async def _count(url: str, sql: str) -> Any:
    engine = create_async_engine(normalise_url(url))
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text(sql))).scalar_one()
    finally:
        await engine.dispose()


def test_backup_script_syntax() -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed here")
    subprocess.run([bash, "-n", str(BACKUP)], check=True)


@pytest.mark.postgres
def test_backup_writes_a_dump_that_restores_and_keeps_older_ones_until_then(tmp_path: Path) -> None:
    if not PG_URL:
        pytest.skip("PostgreSQL not configured: set KEZEK_TEST_POSTGRES_URL (.ci/run does)")
    for tool in ("pg_dump", "pg_restore", "bash"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed here")
    from storage.migrate import upgrade

    source, restored = (f"kezek_deploy_{uuid.uuid4().hex[:8]}" for _ in range(2))
    base = PG_URL.rsplit("/", 1)[0]
    source_url, restored_url = f"{base}/{source}", f"{base}/{restored}"
    asyncio.run(_admin(f'CREATE DATABASE "{source}"'))
    try:
        upgrade(source_url)
        cli_run = [str(kezek_executable()), "--db", source_url]
        districts = tmp_path / "districts.csv"
        districts.write_text("code,name_ru,name_kk\nD1,Район 1,Аудан 1\nD2,Район 2,Аудан 2\n", encoding="utf-8")
        subprocess.run([*cli_run, "import", "districts", str(districts)], check=True, capture_output=True)

        folder = tmp_path / "backups"
        folder.mkdir()
        old, recent = folder / "kezek-20200101T000000Z.dump", folder / "kezek-20990101T000000Z.dump"
        for dump in (old, recent):
            dump.write_bytes(b"an older dump")
        month_ago = time.time() - 30 * 86400
        os.utime(old, (month_ago, month_ago))
        env = {**os.environ, "KEZEK_DATABASE_URL": source_url, "BACKUP_KEEP_DAYS": "14"}

        # A database that does not answer: exit 1, no partial file, the older dumps untouched.
        failed = subprocess.run(["bash", str(BACKUP), str(folder)], capture_output=True, text=True, timeout=120,
                                env={**env, "KEZEK_DATABASE_URL": f"{base}/kezek_no_such_database"})
        assert failed.returncode == 1, failed.stderr
        assert sorted(p.name for p in folder.iterdir()) == [old.name, recent.name]
        # Not PostgreSQL: a usage error.
        assert subprocess.run(["bash", str(BACKUP), str(folder)], capture_output=True, timeout=60,
                              env={**env, "KEZEK_DATABASE_URL": "sqlite:///data/kezek.sqlite3"}).returncode == 2

        done = subprocess.run(["bash", str(BACKUP), str(folder)], capture_output=True, text=True, timeout=300,
                              env=env)
        assert done.returncode == 0, done.stderr
        dumps = sorted(p.name for p in folder.iterdir())
        assert old.name not in dumps and recent.name in dumps and len(dumps) == 2, dumps
        (new,) = [folder / name for name in dumps if name != recent.name]
        assert new.stat().st_mode & 0o077 == 0, "a dump holds personal data: owner only"

        # The restore drill of the guide: a new database from the dump, the same rows.
        asyncio.run(_admin(f'CREATE DATABASE "{restored}"'))
        subprocess.run(["pg_restore", "--no-owner", "--exit-on-error", f"--dbname={restored_url}", str(new)],
                       check=True, capture_output=True, timeout=300)
        assert asyncio.run(_count(restored_url, "SELECT count(*) FROM districts")) == 2
        assert asyncio.run(_count(restored_url, "SELECT version_num FROM alembic_version")) == \
            asyncio.run(_count(source_url, "SELECT version_num FROM alembic_version"))
        stats = subprocess.run([str(kezek_executable()), "--db", restored_url, "db", "upgrade"],
                               capture_output=True, text=True, timeout=120)
        assert stats.returncode == 0, stats.stderr  # at head already: nothing to do
    finally:
        for name in (source, restored):
            asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# --- the guide ------------------------------------------------------------------------------------

def guide_commands(guide: str) -> list[list[str]]:
    """The ``kezek ...`` command lines of the guide (code blocks and inline code), as argument lists:
    ``kezek`` (or ``…/bin/kezek``) followed by a global option or a command name, up to ``&&``, ``|``
    or ``;``. ``kezek`` as a user or group name is not a command line."""
    spans = [line for block in re.findall(r"```(?:bash)?\n(.*?)```", guide, re.S) for line in block.splitlines()]
    spans += re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", guide, flags=re.S))
    found = []
    for span in spans:
        try:
            tokens = shlex.split(span, comments=True)
        except ValueError:
            continue
        for i, token in enumerate(tokens[:-1]):
            following = tokens[i + 1]
            if (token == "kezek" or token.endswith("/bin/kezek")) and (
                    following in cli.commands or following.startswith("--")):
                args = []
                for arg in tokens[i + 1:]:
                    if arg in ("&&", "||", ";", "|"):
                        break
                    if arg not in ("--help", "-h"):
                        args.append(arg)
                found.append(args)
    return found


def test_the_guide_names_files_and_commands_that_exist() -> None:
    guide = GUIDE.read_text(encoding="utf-8")
    for name in re.findall(r"`bot/deploy/([\w.@-]+)`", guide):
        assert (DEPLOY / name).exists() or name == "kezek.env", name  # kezek.env: the operator's copy
    for path in (COMPOSE, ENV_EXAMPLE, DOCKERFILE, NGINX, BACKUP, *UNITS):
        assert path.name in guide, f"the guide does not mention {path.name}"
    commands = guide_commands(guide)
    assert len(commands) >= 10 and ["db", "upgrade"] in commands
    for args in commands:
        parse_cli(args)  # raises on a command or an option kezek does not have
    # The guide's instance ports are the ones the units' instance files set.
    assert "KEZEK_WEBHOOK_PORT=8101" in guide and "127.0.0.1:8101" in guide
