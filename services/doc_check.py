"""Decoding a privilege document under a hard budget.

``services/documents.py`` runs the cheap checks of a file first (its size and type, the scans of a
JPEG, the referral awaiting documents, the 10-file cap). Only then is the file decoded, here, in a
worker process of its own: ``python -I -c ...`` running ``services/doc_decode.py``'s
``worker_main``, which reads the bytes on stdin and answers with one JSON line (``inspect``'s
verdict). So a file can cost no more than:

* the time budget (``DocumentChecker.budget``, KEZEK_DOCUMENT_CHECK_SECONDS; wall clock from the
  process's start): past it the worker is killed (SIGKILL) and the file refused as too complex;
* in the kernel, as a second fence, CPU seconds (RLIMIT_CPU: the budget rounded up, plus one) and
  address space (RLIMIT_AS, ``memory_limit``): a worker that runs out dies or fails, and the file
  is refused the same way;
* a place in line: at most ``workers`` checks run at once; the others wait without holding a
  thread. Nothing of a check runs in asyncio's default thread pool (charts, the referral PDF,
  e-mails, document downloads use it): the waiting is asynchronous, and the cheap checks (a
  SHA-256 of up to 10 MB) run in this module's own small thread pool (``run_cheap``).

A fresh process per file: no state is shared between two files, so a worker killed at the budget
cannot leave a pool broken for the next parent, and the start does not depend on how the bot was
started (no multiprocessing re-import of the main module). The start costs about 0.1 s of CPU
for an image and 0.3 s for a PDF (importing Pillow, pypdf). The worker gets an empty environment (no bot token,
no database URL) and ``-I`` (no user site, no PYTHON* variables, no current folder on the path).

The worker imports nothing of Kezek's but ``services/doc_decode.py`` (the standard library at its
top; Pillow or pypdf when a file needs them)."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import sys
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

# The verdicts and the decoder's measures, named here too ("X as X": re-exported).
from services.doc_decode import ENCRYPTED as ENCRYPTED
from services.doc_decode import OK as OK
from services.doc_decode import TOO_COMPLEX as TOO_COMPLEX
from services.doc_decode import TOO_MANY_PIXELS as TOO_MANY_PIXELS
from services.doc_decode import UNREADABLE as UNREADABLE
from services.doc_decode import inspect as inspect
from services.doc_decode import jpeg_scans as jpeg_scans

log = logging.getLogger("kezek.documents")

T = TypeVar("T")

DEFAULT_BUDGET = 10.0  # seconds a file may take to decode (a 48-MP progressive photo: ~1 s of CPU)
DEFAULT_WORKERS = 2  # checks at once
MEMORY_LIMIT = 1 << 30  # bytes of address space of a worker (a 50-MP RGBA PNG decodes to 200 MB)
# Scans of a JPEG: a baseline file has 1 (up to 4), libjpeg's progressive ones 6 to 10, mozjpeg's a
# few more. Each scan may cost the decoder a pass over the whole image, so a file of thousands of
# tiny scans costs minutes; more than this is refused without decoding.
MAX_SCANS = 100

_ROOT = str(Path(__file__).resolve().parent.parent)  # where ``services`` is importable from
_BOOT = ("import sys; sys.path.insert(0, sys.argv[1]); from services.doc_decode import worker_main; "
         "sys.exit(worker_main(sys.argv[2:]))")


# --- the bot's side --------------------------------------------------------------------------------

# (threads are started at the first use only)
_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="kezek-documents")


async def run_cheap(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in the documents' own small thread pool (never asyncio's default one)."""
    return await asyncio.get_running_loop().run_in_executor(_pool, fn, *args)


class DocumentChecker:
    """Decodes files in worker processes: at most ``workers`` at once, each killed at ``budget``
    seconds (the module's docstring). ``max_scans``: a JPEG of more scans is refused before any
    decoding (``services.documents.precheck``).

    ``started``, ``running`` and ``killed`` (the process ids killed at the budget or when the
    upload was cancelled) tell what it did."""

    def __init__(self, budget: float = DEFAULT_BUDGET, workers: int = DEFAULT_WORKERS, *,
                 max_scans: int = MAX_SCANS, memory_limit: int = MEMORY_LIMIT) -> None:
        if not budget > 0 or workers < 1:
            raise ValueError("a document check needs a positive budget and at least one worker")
        self.budget = float(budget)
        self.workers = workers
        self.max_scans = max_scans
        self.memory_limit = memory_limit
        self.started = 0
        self.running = 0
        self.killed: list[int] = []
        # One gate per event loop (a semaphore belongs to the loop that first waits on it).
        self._gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary())

    def _gate(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        gate = self._gates.get(loop)
        if gate is None:
            gate = self._gates[loop] = asyncio.Semaphore(self.workers)
        return gate

    async def decode(self, data: bytes, kind: str, max_pixels: int) -> dict[str, Any]:
        """``inspect``'s verdict for ``data``, from a worker process; ``TOO_COMPLEX`` when the
        worker ran past the budget (it is killed), ran out of memory or died."""
        async with self._gate():
            self.running += 1
            try:
                return await self._decode(data, kind, max_pixels)
            finally:
                self.running -= 1

    async def _decode(self, data: bytes, kind: str, max_pixels: int) -> dict[str, Any]:
        cpu = math.ceil(self.budget) + 1
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-I", "-c", _BOOT, _ROOT, kind, str(max_pixels), str(cpu), str(self.memory_limit),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL, env={})
        except OSError as exc:
            log.error("a document check could not start: %s", type(exc).__name__)
            return {"verdict": TOO_COMPLEX}
        self.started += 1
        try:
            out, _ = await asyncio.wait_for(proc.communicate(data), self.budget)
        except TimeoutError:
            await self._kill(proc)
            log.warning("a document check was stopped at its budget of %.1f s", self.budget)
            return {"verdict": TOO_COMPLEX}
        except BaseException:  # cancelled (the upload was given up, the bot stops)
            await self._kill(proc)
            raise
        try:
            answer = json.loads(out)
            verdict = answer["verdict"]
        except (ValueError, TypeError, KeyError):
            log.warning("a document check ended without an answer (exit code %s)", proc.returncode)
            return {"verdict": TOO_COMPLEX}
        if verdict == "error":
            log.error("a document check failed: %s", answer.get("error"))
            return {"verdict": TOO_COMPLEX}
        return dict(answer)

    async def _kill(self, proc: asyncio.subprocess.Process) -> None:
        if proc.returncode is None:
            try:
                proc.kill()
            except ProcessLookupError:
                pass
            else:
                self.killed.append(proc.pid)
        await asyncio.shield(proc.wait())
