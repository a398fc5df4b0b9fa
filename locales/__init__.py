"""The words of Kezek: the ru/kk message catalogs and everything that turns a fact into text.

A leaf package: it imports nothing of Kezek's own, and every other package may import it
(ARCHITECTURE.md). Its modules:

- this one: the catalogs and ``gettext`` / ``ngettext`` (below);
- ``locales.formats``: dates, times, deadlines, time zones, numbers, file sizes;
- ``locales.names``: the names of fields, states, privileges, queue-move causes, documents;
- ``locales.errors``: a domain error (its ``code`` and ``params``) as one sentence.

Catalogs live in ``locales/{ru,kk}/LC_MESSAGES/kezek.po``, package data: the wheel carries them
(``tests/project/test_wheel.py``). No ``.mo`` file is built or committed: the first use of a language
compiles its ``.po`` in memory (Babel ``read_po`` + ``write_mo``). Every msgid is English source
text; module-level tables mark theirs with the no-op ``N_`` / ``NP_`` markers so ``pybabel
extract`` finds them (see ``locales/README.md`` for the commands).

Public API::

    normalize_language(lang) -> 'ru' | 'kk'
    translator(lang) -> babel.support.Translations
    compile_catalog(lang) -> bytes          (the .mo bytes; reload_catalogs() forgets the cache)
    gettext(lang, msgid, **params) -> str
    ngettext(lang, singular, plural, n, **params) -> str
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

DOMAIN = "kezek"


LOCALES_DIR = Path(__file__).resolve().parent  # the .po files are this package's data (pyproject.toml)
LANGUAGES: tuple[str, ...] = ("ru", "kk")
DEFAULT_LANGUAGE = "ru"
_ALIASES = {"kz": "kk"}  # some clients report Kazakh as "kz"


def N_(message: str) -> str:
    """Mark a module-level string for extraction; it is translated where it is shown."""
    return message


def NP_(singular: str, plural: str) -> tuple[str, str]:
    """Mark a module-level plural pair for extraction."""
    return singular, plural


# --- catalogs ------------------------------------------------------------------------------------

_cache: dict[str, Translations] = {}
_lock = threading.RLock()


def normalize_language(lang: str | None) -> str:
    """'ru', 'kk' (also 'kk-KZ', 'ru_RU', 'kz'); anything else is the default, 'ru'."""
    code = (lang or "").strip().replace("_", "-").split("-")[0].lower()
    code = _ALIASES.get(code, code)
    return code if code in LANGUAGES else DEFAULT_LANGUAGE


def po_path(lang: str) -> Path:
    return LOCALES_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def compile_catalog(lang: str) -> bytes:
    """The .mo bytes of a language's .po (fuzzy entries left out, like ``pybabel compile``)."""
    with po_path(lang).open("rb") as fh:
        catalog = read_po(fh, locale=lang, domain=DOMAIN)
    buf = io.BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)
    return buf.getvalue()


def translator(lang: str | None) -> Translations:
    """The compiled catalog of ``lang`` ('ru' | 'kk'; anything else gives 'ru').

    A Kazakh message missing from the Kazakh catalog falls back to Russian, not English."""
    code = normalize_language(lang)
    cached = _cache.get(code)
    if cached is not None:
        return cached
    with _lock:
        if code not in _cache:
            translations = Translations(fp=io.BytesIO(compile_catalog(code)), domain=DOMAIN)
            if code != DEFAULT_LANGUAGE:
                translations.add_fallback(translator(DEFAULT_LANGUAGE))
            _cache[code] = translations
        return _cache[code]


def reload_catalogs() -> None:
    """Forget compiled catalogs (after editing a .po file in a running process)."""
    with _lock:
        _cache.clear()


_DOUBLE_DOT = re.compile(r"(?<!\.)\.\.(?!\.)")


def _format(template: str, source: str, params: Mapping[str, Any]) -> str:
    if not params:
        return template
    try:
        text = template.format(**params)
    except (KeyError, IndexError, ValueError, TypeError):
        # A broken translation must not break a reply: fall back to the source text.
        try:
            text = source.format(**params)
        except (KeyError, IndexError, ValueError, TypeError):
            return template
    # A value ending in an abbreviation ('2024 г.') at the end of a sentence: one full stop.
    return _DOUBLE_DOT.sub(".", text)


def gettext(lang: str | None, msgid: str, **params: Any) -> str:
    """Translate ``msgid`` and fill its ``{placeholders}`` with ``params`` (str.format)."""
    return _format(translator(lang).gettext(msgid), msgid, params)


def ngettext(lang: str | None, singular: str, plural: str, n: int, **params: Any) -> str:
    """Plural-aware translation; ``{count}`` is ``n`` unless given."""
    params.setdefault("count", n)
    source = singular if n == 1 else plural
    return _format(translator(lang).ngettext(singular, plural, n), source, params)
