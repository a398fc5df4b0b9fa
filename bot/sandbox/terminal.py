"""The console demo's terminal: text without control characters, Telegram's HTML as terminal text
(bold and links as ANSI or plain), durations typed by an operator (``2h30m``), message and button
lines wrapped to the terminal's width, and stdin read without blocking the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import html
import queue
import re
import textwrap
import threading

from bot.sandbox.clock import parse_iso_duration

WIDTH = 80
INDENT = "  "


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s[^>]*)?)>")
_HREF = re.compile(r"""href\s*=\s*["']([^"']*)["']""")
_DURATION_PART = re.compile(r"(\d+)\s*(w|d|h|m|s)", re.I)
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def clean(text: str) -> str:
    """Text without control characters (no terminal escapes from data), newlines and tabs kept."""
    return _CONTROL.sub("", text)


def html_to_text(text: str, *, ansi: bool = False) -> str:
    """Telegram HTML as terminal text: tags dropped (bold/italic/underline as ANSI when ``ansi``),
    links followed by their address, entities unescaped."""
    styles = {"b": ("1", "22"), "strong": ("1", "22"), "i": ("3", "23"), "em": ("3", "23"),
              "u": ("4", "24"), "ins": ("4", "24")}
    links: list[str] = []

    def tag(m: re.Match[str]) -> str:
        closing, name, attrs = m.group(1) == "/", m.group(2).lower(), m.group(3)
        if name == "a":
            if not closing:
                href = _HREF.search(attrs or "")
                links.append(html.unescape(href.group(1)) if href else "")
                return ""
            url = links.pop() if links else ""
            return f" ({url})" if url else ""
        if name == "br":
            return "\n"
        if ansi and name in styles:
            return f"\x1b[{styles[name][1 if closing else 0]}m"
        return ""

    return html.unescape(_TAG.sub(tag, text))


def parse_duration(text: str) -> dt.timedelta | None:
    """``PT3H``, ``P1DT2H``, ``1d``, ``2h30m``, ``90m``: a positive timedelta, else None."""
    value = text.strip()
    if not value:
        return None
    if value[:1] in "Pp":
        try:
            delta = parse_iso_duration(value)
        except ValueError:
            return None
    else:
        parts = _DURATION_PART.findall(value)
        if not parts or "".join(f"{n}{u}" for n, u in parts).lower() != re.sub(r"\s+", "", value).lower():
            return None
        delta = dt.timedelta()
        for number, unit in parts:
            delta += dt.timedelta(**{_UNITS[unit.lower()]: int(number)})
    return delta if delta > dt.timedelta(0) else None


def _letter(index: int) -> str:
    return "abcdefghijklmnopqrstuvwxyz"[index] if index < 26 else f"z{index - 25}"


def _wrap(text: str, indent: str = INDENT) -> list[str]:
    """Each line of ``text`` wrapped to the terminal width (words are not broken: an IIN or a link
    stays whole)."""
    out: list[str] = []
    for line in text.split("\n"):
        if not line.strip():
            out.append("")
            continue
        lead = line[: len(line) - len(line.lstrip(" "))]
        out += textwrap.wrap(line, width=WIDTH - len(indent), subsequent_indent=lead,
                             break_long_words=False, break_on_hyphens=False) or [""]
    return [indent + line if line else "" for line in out]


def _button_rows(rows: list[list[str]], indent: str = INDENT) -> list[str]:
    """Keyboard rows as lines (``[1] Text   [2] Text``), a row split when it is wider than the
    terminal."""
    lines: list[str] = []
    for row in rows:
        line = ""
        for item in row:
            if line and len(indent) + len(line) + 3 + len(item) > WIDTH:
                lines.append(indent + line)
                line = ""
            line = f"{line}   {item}" if line else item
        if line:
            lines.append(indent + line)
    return lines


def _settle(future: asyncio.Future[str | None], line: str | None) -> None:
    if not future.done():
        future.set_result(line)


class _StdinReader:
    """Lines from stdin, read on demand by a daemon thread (``input()``, so line editing works): a
    Ctrl+C or the end of the demo never waits for a line that does not come."""

    def __init__(self) -> None:
        with contextlib.suppress(ImportError):  # line editing and history for input(), where available
            import readline  # noqa: F401
        self._requests: queue.SimpleQueue[tuple[str, asyncio.Future[str | None], asyncio.AbstractEventLoop]] = \
            queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="kezek-console-stdin", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            prompt, future, loop = self._requests.get()
            try:
                line: str | None = input(prompt)
            except EOFError:
                line = None
            except Exception:  # noqa: BLE001 - a closed or broken stdin ends the demo
                line = None
            try:
                loop.call_soon_threadsafe(_settle, future, line)
            except RuntimeError:  # the loop is gone
                return
            if line is None:
                return

    async def readline(self, prompt: str = "") -> str | None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str | None] = loop.create_future()
        self._requests.put((prompt, future, loop))
        return await future
