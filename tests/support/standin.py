"""``kezek run`` as a separate process, for the end-to-end tests that talk to it through the Bot
API stand-in (``bot/bench/standin.py``)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from bot.bench.standin import TOKEN, BotApiError, BotApiStandIn, Call, Upload  # noqa: F401 - the tests' one import
from tests.support import ROOT

# The first wait on a process includes its start-up (imports, migrations): slow on a busy CI box.
START_UP = 90.0


class BotProcess:
    """``kezek run`` (or another ``kezek`` command) as a separate process (output to ``log_path``),
    for end-to-end tests."""

    def __init__(self, log_path: Path, db_url: str, env: dict[str, str], args: list[str] | None = None,
                 command: tuple[str, ...] = ("run",)) -> None:
        self.log_path, self.db_url = log_path, db_url
        self.args = list(args or [])  # global options before the command, e.g. ["--now", "..."]
        self.command = list(command)  # `run`, or e.g. ("outbox", "send")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("KEZEK_")}
        self.env.update(KEZEK_LANG="ru", PYTHONUNBUFFERED="1", **env)
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> BotProcess:
        with self.log_path.open("wb") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", "from bot.cli.main import main; main()", "--db", self.db_url,
                *self.args, *self.command,
                cwd=ROOT, env=self.env, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out)
        return self

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode if self.proc is not None else None

    def log(self, tail: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-tail:] if self.log_path.exists() else ""

    def alive(self) -> str | None:
        """None while running; else why not (for ``BotApiStandIn.wait_for(alive=...)``)."""
        if self.returncode is None:
            return None
        return f"the bot exited with {self.returncode}; its log:\n{self.log()}"

    async def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 15) -> int:
        """Send ``sig`` and wait for the exit (killed after ``timeout`` s); the exit code."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                if self.command[0] == "run":  # its log then says where it hung (bot.telegram.runner)
                    self.proc.send_signal(signal.SIGUSR1)
                    await asyncio.sleep(1)
                self.proc.kill()
                await asyncio.wait_for(self.proc.wait(), timeout)
        assert self.proc.returncode is not None
        return self.proc.returncode


async def until(check: Callable[[], Awaitable[bool] | bool], what: str, timeout: float,
                *procs: BotProcess) -> float:
    """Wait for ``check`` (every 50 ms) while ``procs`` stay alive; the seconds it took."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while True:
        done = check()
        if not isinstance(done, bool):
            done = await done
        if done:
            return loop.time() - started
        for proc in procs:
            assert proc.alive() is None, proc.alive()
        assert loop.time() - started < timeout, f"{what}: not within {timeout} s"
        await asyncio.sleep(0.05)
