"""Files and folders that hold personal data: the e-mails of the mail folder (they carry one-tap
link tokens and codes), the SQLite database, privilege documents, the sandbox API token.

Readable by their owner only from the first byte, whatever the process's umask: folders are
created 0700 and files 0600 (``os.mkdir``/``os.open`` with that mode, which a umask can only
narrow, then set exactly), never created open and narrowed afterwards. A file is written whole or
not at all: a temporary file in the same folder (``tempfile.mkstemp``: 0600, ``O_EXCL``), then
``os.replace``.

Folders and files made by older versions (0755 and 0644 under the usual umask 022) are narrowed
by ``tighten`` where the code owns the path outright: the mail folder, the SQLite database and its
``-wal``/``-shm`` files. A folder an operator named that may hold other things (the database's
folder) is created 0700 when missing and otherwise left as it is."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
_OTHERS = 0o077  # the group's and the others' bits


def tighten(path: Path | str) -> bool:
    """Take the group's and the others' permissions off ``path`` when this user owns it and it
    has any (a folder or file made by an older version); whether it changed anything."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    mode = stat.S_IMODE(st.st_mode)
    if not mode & _OTHERS or st.st_uid != os.geteuid():
        return False
    os.chmod(path, mode & ~_OTHERS)
    return True


def private_dir(path: Path | str, *, narrow: bool = False) -> Path:
    """``path`` as a folder: each missing level created 0700; ``narrow``: an existing ``path``
    of this user's loses the group's and the others' permissions (``tighten``)."""
    path = Path(path)
    missing: list[Path] = []
    level = path
    while not level.exists() and level != level.parent:
        missing.append(level)
        level = level.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, PRIVATE_DIR)
        except FileExistsError:  # made meanwhile by another process
            continue
        os.chmod(folder, PRIVATE_DIR)  # exactly 0700 (a umask of 0o277 would have left 0500)
    if narrow and not missing:
        tighten(path)
    return path


def write_private(path: Path | str, data: bytes, *, durable: bool = False) -> None:
    """Write ``data`` to ``path`` (mode 0600), whole or not at all; ``durable``: fsync first.
    The folder must exist (``private_dir``)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), PRIVATE_FILE)
            out.write(data)
            if durable:
                out.flush()
                os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def private_file(path: Path | str) -> Path:
    """``path`` as an existing file of mode 0600: created empty when missing (its folder 0700
    when missing), else narrowed (``tighten``). For files another library then opens and fills
    (the SQLite database)."""
    path = Path(path)
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        tighten(path)
        return path
    try:
        os.fchmod(fd, PRIVATE_FILE)
    finally:
        os.close(fd)
    return path


def sqlite_file(url: str) -> Path | None:
    """The file of an SQLite URL (``sqlite:///path``, ``sqlite+aiosqlite:///path?...``), or None
    (another database, an in-memory one, a ``file:`` URI)."""
    scheme, sep, rest = url.partition(":///")
    if not sep or not scheme.startswith("sqlite"):
        return None
    name = rest.split("?", 1)[0]
    if not name or name == ":memory:" or name.startswith("file:"):
        return None
    return Path(name)


def private_sqlite(url: str) -> Path | None:
    """Before SQLite opens the database of ``url``: its file 0600 (created empty when missing:
    SQLite makes the ``-wal`` and ``-shm`` files with the database file's mode), its folder 0700
    when missing; the ``-wal``/``-shm`` files an older version left narrowed. The file, or None
    when ``url`` is not an SQLite file."""
    path = sqlite_file(url)
    if path is None:
        return None
    private_file(path)
    for suffix in ("-wal", "-shm", "-journal"):
        tighten(f"{path}{suffix}")
    return path
