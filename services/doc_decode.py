"""Opening and decoding a privilege document: the worker process's side of
``services/doc_check.py`` (read that first). Only the standard library at the top, so that a
worker starts fast; Pillow or pypdf are imported when a file needs them. Nothing here is bounded:
the bot calls it through ``doc_check.DocumentChecker``, in a worker process killed at a budget."""

from __future__ import annotations

import io
import json
import struct
import sys
import warnings
from typing import Any

# The verdicts of ``inspect``.
OK = "ok"
UNREADABLE = "unreadable"
TOO_MANY_PIXELS = "too_many_pixels"
ENCRYPTED = "encrypted"
TOO_COMPLEX = "too_complex"  # over the budget, out of memory, or the worker died


def jpeg_scans(data: bytes) -> int:
    """How many scans (SOS markers) a JPEG has, at most: every scan a decoder reads starts with
    the bytes FF DA, which entropy-coded data never holds (an FF there is followed by 00 or a
    restart marker). Bytes inside other segments (EXIF, an ICC profile) may add a few."""
    return data.count(b"\xff\xda")


def _inspect_image(data: bytes, kind: str, max_pixels: int) -> dict[str, Any]:
    from PIL import Image, UnidentifiedImageError

    fmt = "JPEG" if kind == "jpeg" else "PNG"
    try:
        with warnings.catch_warnings():
            # Pillow warns past its own pixel limit; here that is a refusal, like ours below.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[fmt]) as im:  # reads the header only
                width, height = im.size
                if width * height > max_pixels:
                    return {"verdict": TOO_MANY_PIXELS}
                im.verify()  # the structure (a PNG's chunks and their checksums)
            with Image.open(io.BytesIO(data), formats=[fmt]) as im:
                if kind == "jpeg":
                    # An eighth of the size is enough to prove every scan decodes (and cheap);
                    # a cut or corrupt JPEG fails here.
                    im.draft("L", (max(1, width // 8), max(1, height // 8)))
                im.load()  # a PNG whole: its image data inflates and every row unfilters
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return {"verdict": TOO_MANY_PIXELS}
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError,
            struct.error):
        return {"verdict": UNREADABLE}
    return {"verdict": OK, "width": width, "height": height}


def _inspect_pdf(data: bytes) -> dict[str, Any]:
    from pypdf import PasswordType, PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")  # an owner password only: it opens for reading
            except Exception:  # noqa: BLE001 - an unknown cipher, a missing crypto library
                opened = PasswordType.NOT_DECRYPTED
            if not opened:
                return {"verdict": ENCRYPTED}
        pages = len(reader.pages)
    except MemoryError:
        raise
    except RecursionError:
        return {"verdict": UNREADABLE}
    except Exception:  # noqa: BLE001 - pypdf raises many kinds on a broken file
        return {"verdict": UNREADABLE}
    if pages < 1:
        return {"verdict": UNREADABLE}
    return {"verdict": OK, "pages": pages}


def inspect(data: bytes, kind: str, max_pixels: int) -> dict[str, Any]:
    """Open and decode ``data`` (``kind``: jpeg, png or pdf) in this process: the verdict, with
    the image's width and height or the PDF's pages. Unbounded: the bot calls it through
    ``DocumentChecker``, in a worker process."""
    try:
        if kind == "pdf":
            return _inspect_pdf(data)
        return _inspect_image(data, kind, max_pixels)
    except MemoryError:
        return {"verdict": TOO_COMPLEX}


def _limit(cpu_seconds: int, memory: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    if memory > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))


def worker_main(argv: list[str]) -> int:
    """The worker process: ``kind max_pixels cpu_seconds memory``; the file on stdin; one JSON
    line on stdout. An unexpected error is answered with its type's name only."""
    kind, max_pixels, cpu_seconds, memory = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    try:
        _limit(cpu_seconds, memory)
        data = sys.stdin.buffer.read()
        answer = inspect(data, kind, max_pixels)
    except MemoryError:
        answer = {"verdict": TOO_COMPLEX}
    except BaseException as exc:  # noqa: BLE001 - told to the bot, which logs the type alone
        answer = {"verdict": "error", "error": type(exc).__name__}
    sys.stdout.write(json.dumps(answer))
    sys.stdout.flush()
    return 0
