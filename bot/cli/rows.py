"""The rows of a registry file for ``kezek import``: a CSV as people make it, or a JSON array.

A CSV may come from Excel in a Russian locale: ``;`` between the cells (the delimiter is sniffed
from the header line among ``,`` ``;`` and tab), a UTF-8 BOM, CRLF line ends, quoted cells holding
a delimiter or a line break. The header is checked against the columns of the kind before any row
is read: the missing required and the unknown columns are named, with the columns expected. A file
not in UTF-8 (Excel's default «CSV», cp1251) is told how to be saved as UTF-8. The file is read as a
stream: the rows are the only copy kept in memory. Every refusal is :class:`FileRejected` with its
localized lines; nothing is written."""

from __future__ import annotations

import codecs
import csv
import json
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any

from locales import gettext
from locales.names import field_text

if TYPE_CHECKING:
    from pydantic import BaseModel

DELIMITERS = ",;\t"


class FileRejected(Exception):
    """A file that cannot be imported; ``lines`` say why, in the operator's language."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__(*lines)
        self.lines = lines


def columns(kind: str) -> tuple[list[str], list[str]]:
    """The (required, optional) columns of a kind, as the services read them."""
    from bot.api import schemas as shapes
    from services.directory import PROFILE_FIELDS

    if kind == "profiles":  # (services.directory.upsert_profiles; no API body)
        return ["code"], ["name", "window_open", "window_close", "twins_together", *PROFILE_FIELDS]
    models: dict[str, type[BaseModel]] = {"districts": shapes.District, "kindergartens": shapes.Kindergarten,
                                          "applications": shapes.Application}
    model = models[kind]
    required = [name for name, field in model.model_fields.items() if field.is_required()]
    optional = [name for name, field in model.model_fields.items() if not field.is_required()]
    return required, optional


def read_rows(path: Path, kind: str, lang: str) -> list[dict[str, Any]]:
    """The rows of a .csv or .json file; :class:`FileRejected` when it cannot be imported."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise FileRejected([gettext(lang, "Unknown file type: use .csv or .json.")])
    try:
        with _open_text(path) as fh:
            return _read_json(fh, lang) if suffix == ".json" else _read_csv(fh, kind, lang)
    except UnicodeError:  # cp1251 and any other bytes that are not UTF-8
        raise FileRejected([gettext(lang, "The file is not in UTF-8: in Excel choose “Save as” → “CSV UTF-8”.")]
                           ) from None
    except OSError as exc:
        raise FileRejected([gettext(lang, "Cannot read the file: {error}", error=type(exc).__name__)]) from None


def _open_text(path: Path) -> Any:
    """The file as text: UTF-8 (a BOM is dropped), or UTF-16 when it starts with its BOM (Excel's
    «Unicode text»); ``newline=""`` keeps the line breaks inside quoted CSV cells."""
    with path.open("rb") as probe:
        head = probe.read(4)
    utf16 = head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) and not head.startswith(codecs.BOM_UTF32_LE)
    return path.open(encoding="utf-16" if utf16 else "utf-8-sig", errors="strict", newline="")


def _read_json(fh: Any, lang: str) -> list[dict[str, Any]]:
    try:
        data = json.load(fh)
    except json.JSONDecodeError as exc:
        raise FileRejected([gettext(lang, "The file is not valid JSON (line {line}).", line=exc.lineno)]) from None
    if not isinstance(data, list):
        raise FileRejected([gettext(lang, "The JSON file must hold an array of objects.")])
    return data


def _delimiter(header_line: str) -> str:
    try:
        return csv.Sniffer().sniff(header_line, delimiters=DELIMITERS).delimiter
    except csv.Error:  # one column, or nothing to tell by
        counts = {d: header_line.count(d) for d in DELIMITERS}
        best = max(counts, key=lambda d: counts[d])
        return best if counts[best] else ","


def _read_csv(fh: Any, kind: str, lang: str) -> list[dict[str, Any]]:
    first = fh.readline()
    while first and not first.strip():  # blank lines before the header
        first = fh.readline()
    if not first.strip():
        raise FileRejected([gettext(lang, "The file is empty: its first line must name the columns.")])
    reader = csv.reader(chain([first], fh), delimiter=_delimiter(first))
    header = [name.strip().lstrip("\ufeff").lower() for name in next(reader)]
    _check_header(header, kind, lang)
    wanted = [(i, name) for i, name in enumerate(header) if name]  # Excel's empty trailing columns: dropped
    rows = []
    for cells in reader:
        if not cells:  # an empty line
            continue
        rows.append({name: _cell(cells[i]) if i < len(cells) else None for i, name in wanted})
    return rows


def _cell(value: str) -> str:
    """A cell's text; a line break inside it is one ``\\n`` however the file's lines end."""
    return value.replace("\r\n", "\n") if "\r" in value else value


def _check_header(header: list[str], kind: str, lang: str) -> None:
    required, optional = columns(kind)
    named = [name for name in header if name]
    missing = [name for name in required if name not in named]
    unknown = [name for name in named if name not in required and name not in optional]
    if not missing and not unknown:
        return
    lines = []
    if missing:
        shown = ", ".join(f"{name} ({field_text(lang, name)})" if field_text(lang, name) != name else name
                          for name in missing)
        lines.append(gettext(lang, "The header lacks required columns: {columns}.", columns=shown))
    if unknown:
        lines.append(gettext(lang, "Unknown columns in the header: {columns}.", columns=", ".join(unknown)))
    lines.append(gettext(lang, "Expected columns: {required}; optional: {optional}.",
                              required=", ".join(required), optional=", ".join(optional)))
    raise FileRejected(lines)


PROGRESS_FROM = 1000  # rows: a smaller file imports in a blink


def shows_progress(count: int, stream: Any) -> bool:
    """A progress bar for a large file, on a terminal only (not in a pipe, a log or a test)."""
    isatty = getattr(stream, "isatty", None)
    return count > PROGRESS_FROM and bool(isatty and isatty())


class Progress:
    """A click progress bar on ``stream`` for a large import on a terminal, drawn from its first
    step, so the errors found before any step come on lines of their own; ``finish`` ends its line."""

    def __init__(self, length: int, label: str, stream: Any) -> None:
        self.length, self.label, self.stream = length, label, stream
        self.shown = shows_progress(length, stream)
        self._bar: Any = None
        self._done = False

    def update(self, steps: int) -> None:
        if not self.shown or self._done:
            return
        if self._bar is None:
            import click

            self._bar = click.progressbar(length=self.length, label=self.label, file=self.stream)
            self._bar.__enter__()
        self._bar.update(steps)

    def finish(self) -> None:
        if self._bar is not None and not self._done:
            self._bar.__exit__(None, None, None)
        self._done = True


class Reporting(list[dict[str, Any]]):
    """The rows, telling ``progress.update(1)`` as each is read and ``progress.finish()`` after the
    last: the progress of the kinds whose service reports none itself (the rows are checked one by
    one, then written at once)."""

    def __init__(self, rows: list[dict[str, Any]], progress: Progress) -> None:
        super().__init__(rows)
        self._progress = progress

    def __iter__(self) -> Any:
        for row in super().__iter__():
            yield row
            self._progress.update(1)
        self._progress.finish()
