"""Where the files of privilege documents are kept: a small interface and a folder behind it.

The database holds what was received (``storage.models.Document``); the bytes live in a
``DocumentStore`` under a key Kezek makes (``new_key``): never a name that came from the user, so a
file name sent in the chat can neither reach the disk nor be guessed. The folder store writes a file
atomically (a temporary file in the same folder, fsync, rename), so a crash leaves either the whole
file or none. Several bot instances share the store: a shared folder (NFS) or another
implementation of the protocol (an object store) for a scale-out deployment.

Synchronous on purpose (local disk): the facade calls it in a worker thread."""

from __future__ import annotations

import contextlib
import re
import secrets
from pathlib import Path
from typing import Protocol

from storage.private_files import private_dir, write_private

KEY_RE = re.compile(r"[0-9a-f]{32}")


def new_key() -> str:
    """A fresh storage key: 128 random bits as hex."""
    return secrets.token_hex(16)


class DocumentStoreError(Exception):
    """The store could not keep or give back a file (a full disk, a missing file)."""


class DocumentStore(Protocol):
    def put(self, key: str, data: bytes) -> None:
        """Keep ``data`` under ``key`` (replacing what was there)."""

    def get(self, key: str) -> bytes:
        """The bytes under ``key``; ``DocumentStoreError`` when there are none."""

    def delete(self, key: str) -> None:
        """Forget ``key`` (nothing happens when it is not there)."""


def _checked(key: str) -> str:
    if not isinstance(key, str) or not KEY_RE.fullmatch(key):
        raise DocumentStoreError("not a storage key")
    return key


class FolderDocumentStore:
    """Files in a folder, two levels deep by the key's first characters (``ab/abcdef….bin``),
    readable by the owner only."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        key = _checked(key)
        return self.root / key[:2] / f"{key}.bin"

    def put(self, key: str, data: bytes) -> None:
        target = self.path(key)
        try:
            private_dir(target.parent)
            write_private(target, data, durable=True)
        except OSError as exc:
            raise DocumentStoreError(type(exc).__name__) from exc

    def get(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except OSError as exc:
            raise DocumentStoreError(type(exc).__name__) from exc

    def delete(self, key: str) -> None:
        with contextlib.suppress(OSError):
            self.path(key).unlink()


class MemoryDocumentStore:
    """A store in memory (tests, the console demo)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def put(self, key: str, data: bytes) -> None:
        self.files[_checked(key)] = bytes(data)

    def get(self, key: str) -> bytes:
        try:
            return self.files[_checked(key)]
        except KeyError:
            raise DocumentStoreError("no such file") from None

    def delete(self, key: str) -> None:
        self.files.pop(key, None)
