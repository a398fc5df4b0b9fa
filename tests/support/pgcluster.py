"""A private PostgreSQL cluster for fault tests: ``initdb`` into a temporary folder, a postmaster on a
free loopback port, and the test may stop, start and restart it at will (``pg_ctl``) without
touching the shared server on 5432.

PostgreSQL refuses to run as root: when the tests run as root, the cluster's processes run as an
unprivileged system user (``postgres``, else ``nobody``) that owns the folder. ``unavailable()``
says why a cluster cannot be made here (binaries missing, no such user), for a ``pytest.skip``."""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any

CANDIDATE_USERS = ("postgres", "nobody")
BINARIES = ("initdb", "pg_ctl", "postgres")


def _bin_dir() -> Path | None:
    """A folder holding initdb, pg_ctl and postgres (on PATH, or Debian's /usr/lib/postgresql/N/bin)."""
    found = shutil.which("initdb")
    dirs = [Path(found).resolve().parent] if found else []
    dirs += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    dirs += [Path(p) for p in sorted(glob.glob("/usr/local/pgsql*/bin"), reverse=True)]
    for d in dirs:
        if all(os.access(d / b, os.X_OK) for b in BINARIES):
            return d
    return None


def _run_as() -> pwd.struct_passwd | None:
    """The unprivileged user to run the cluster as (None: this process is not root, run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in CANDIDATE_USERS:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise LookupError("running as root and there is no unprivileged user "
                      f"({' or '.join(CANDIDATE_USERS)}) to run PostgreSQL as")


def unavailable() -> str | None:
    """Why a private cluster cannot be started here, or None."""
    if _bin_dir() is None:
        return "the PostgreSQL server binaries (initdb, pg_ctl, postgres) are not installed"
    try:
        _run_as()
    except LookupError as exc:
        return str(exc)
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgCluster:
    """One throw-away cluster. ``await PgCluster.create()``, then ``url()``, ``stop()``, ``start()``,
    ``restart()``, ``is_up()``; ``destroy()`` stops it (immediate mode) and removes its folder."""

    def __init__(self, root: Path, bin_dir: Path, user: pwd.struct_passwd | None, port: int) -> None:
        self.root, self.bin_dir, self.user, self.port = root, bin_dir, user, port
        self.data = root / "data"
        self.log_path = root / "postgres.log"

    @classmethod
    async def create(cls, *, port: int | None = None) -> PgCluster:
        reason = unavailable()
        if reason:
            raise RuntimeError(reason)
        bin_dir, user = _bin_dir(), _run_as()
        assert bin_dir is not None
        root = Path(tempfile.mkdtemp(prefix="kezek-pg-"))  # in /tmp: reachable by the cluster's user
        if user is not None:
            os.chown(root, user.pw_uid, user.pw_gid)
        cluster = cls(root, bin_dir, user, port or free_port())
        try:
            await cluster._pg("initdb", "-D", str(cluster.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                              "--locale=C", "--no-sync")
            await cluster.start()
        except BaseException:
            cluster.remove()
            raise
        return cluster

    async def _pg(self, binary: str, *args: str, check: bool = True, timeout: float = 60) -> str:
        kw: dict[str, Any] = {}
        if self.user is not None:
            kw = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        proc = await asyncio.create_subprocess_exec(
            str(self.bin_dir / binary), *args, cwd=self.root, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        text = out.decode(errors="replace")
        if check and proc.returncode != 0:
            raise RuntimeError(f"{binary} {' '.join(args)} failed ({proc.returncode}):\n{text}\n{self.log()}")
        return text

    @property
    def options(self) -> str:
        # Loopback only, the socket in our folder, no fsync (a test's data need not survive a power cut).
        return (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.root} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    async def start(self) -> None:
        await self._pg("pg_ctl", "-D", str(self.data), "-l", str(self.log_path), "-o", self.options, "-w",
                       "-t", "60", "start")

    async def stop(self, mode: str = "fast") -> None:
        await self._pg("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    async def restart(self, mode: str = "fast") -> None:
        await self._pg("pg_ctl", "-D", str(self.data), "-l", str(self.log_path), "-o", self.options,
                       "-m", mode, "-w", "-t", "60", "restart")

    async def is_up(self) -> bool:
        return "server is running" in await self._pg("pg_ctl", "-D", str(self.data), "status", check=False)

    async def create_database(self, name: str) -> str:
        """``CREATE DATABASE name``; its URL."""
        import asyncpg

        conn = await asyncpg.connect(self.url())
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return self.url(name)

    def log(self, tail: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-tail:] if self.log_path.exists() else ""

    async def destroy(self) -> None:
        try:
            if self.data.exists():
                await self._pg("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
        finally:
            self.remove()

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
