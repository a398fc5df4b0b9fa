"""Compact signed tokens: a *purpose*, a row id and an optional expiry, signed with HMAC-SHA256.

What a token is for decides its shape: it travels in a QR code on a paper referral (the
kindergarten scans or types it) and, with purpose ``link``, in a Telegram deep link
``https://t.me/<bot>?start=<token>``, whose parameter is at most 64 characters of
``[A-Za-z0-9_-]``. So no JSON and no separator: the token is base64url (RFC 4648, no padding) of

    header (1 byte: format version 1 in the high nibble, bit 0 set when an expiry follows)
    purpose code (1 byte, ``PURPOSES``)
    id (unsigned LEB128 varint)
    expiry (unsigned LEB128 varint of Unix seconds, only with the header's bit 0)
    MAC: the first 16 bytes (128 bits) of HMAC-SHA256(key, "kezek-token" NUL purpose NUL the bytes above)

A token may also be *bound* to a value that is not in it (``bound=``): the value goes into the MAC
only, so the token verifies only while the verifier gives the same value. A link token is bound to
the e-mail address it was sent to: when the registry changes the application's address, every link
sent to the old one stops working, with no list of tokens to revoke.

A referral token is 27 characters, a link token with an expiry 35. The purpose's *name* is inside
the MAC, so a token made for one purpose never passes for another even under the same key; the
code byte only lets the refusal say "wrong purpose" instead of "forged". Decoding is strict: one
changed character, a cut token, an overlong varint or non-canonical base64 (the spare low bits of
the last character) is refused, and the MAC is compared in constant time (``hmac.compare_digest``).

Why not ``itsdangerous``: its tokens hold a ``.`` and a full-length signature, too long and of the
wrong alphabet for a deep link; the standard library's ``hmac`` does the cryptography here.

The key: ``KEZEK_SIGNING_KEY`` when set (bot/config.py), else a random one made on first use and
kept in the ``signing_keys`` table, so every instance and the CLI agree with nothing to configure
(``stored_key``). The key is never logged; ``Signer``'s repr does not show it. Changing the key
refuses every token made under the old one, unless the old one is kept as a previous key
(``KEZEK_SIGNING_KEY_PREVIOUS``) while its tokens may still be in use."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select

from services.context import Ctx
from storage.models import SigningKey

# Purpose names and their one-byte codes. Append only: a code once used keeps its meaning.
PURPOSES: dict[str, int] = {
    "referral": 1,  # the QR code of a referral PDF (services/referral_check.py)
    "link": 2,  # one-tap linking deep links (/start <token>)
    "staff": 3,  # an invitation to act as a kindergarten's staff (services/staff.py)
}
_PURPOSE_NAMES = {code: name for name, code in PURPOSES.items()}

VERSION = 1
_HAS_EXPIRY = 0x01
MAC_BYTES = 16  # 128 bits
MIN_KEY_BYTES = 32
MAX_TOKEN_CHARS = 64  # the longest token this format makes is well under Telegram's limit
_DOMAIN = b"kezek-token\x00"
_ALPHABET = re.compile(r"[A-Za-z0-9_-]+")
STORED_KEY_NAME = "tokens"


class TokenError(Exception):
    """A token that does not verify. ``reason`` (for logs, never for the person who sent it):
    ``malformed`` (not this format, cut, padded, overlong), ``bad_signature`` (forged, altered,
    or made under another key), ``wrong_purpose`` (genuine, but made for something else),
    ``expired``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Claims:
    """What a genuine token says."""

    purpose: str
    id: int
    expires_at: dt.datetime | None = None


def _varint(value: int) -> bytes:
    if value < 0:
        raise ValueError("a token carries non-negative integers only")
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise TokenError("malformed")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(token: str) -> bytes:
    if len(token) % 4 == 1:
        raise TokenError("malformed")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise TokenError("malformed") from None
    if _b64encode(raw) != token:  # the spare bits of the last character must be zero
        raise TokenError("malformed")
    return raw


def _payload(purpose: str, ident: int, expires_at: dt.datetime | None) -> bytes:
    code = PURPOSES.get(purpose)
    if code is None:
        raise ValueError(f"unknown token purpose: {purpose!r}")
    header = VERSION << 4 | (_HAS_EXPIRY if expires_at is not None else 0)
    body = bytes((header, code)) + _varint(ident)
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise ValueError("a token's expiry must be an aware datetime")
        body += _varint(int(expires_at.timestamp()))
    return body


class Signer:
    """Makes and checks tokens under one key (at least ``MIN_KEY_BYTES`` bytes)."""

    def __init__(self, key: bytes, previous: Sequence[bytes] = ()) -> None:
        """``previous``: keys of a rotation whose tokens still verify; new ones use ``key``."""
        if any(len(k) < MIN_KEY_BYTES for k in (key, *previous)):
            raise ValueError(f"a signing key needs at least {MIN_KEY_BYTES} bytes")
        self._key = key
        self._previous = tuple(previous)

    def __repr__(self) -> str:
        return "Signer(key=<hidden>)"

    def _mac(self, purpose: str, payload: bytes, bound: str | None = None, key: bytes | None = None) -> bytes:
        message = _DOMAIN + purpose.encode("ascii") + b"\x00" + payload
        if bound is not None:
            message += b"\x00" + hashlib.sha256(bound.encode("utf-8")).digest()
        return hmac.new(key or self._key, message, hashlib.sha256).digest()[:MAC_BYTES]

    def sign(self, purpose: str, ident: int, *, expires_at: dt.datetime | None = None,
             bound: str | None = None) -> str:
        """A token for row ``ident`` and ``purpose``; with ``expires_at`` (aware) it stops
        verifying then (to the second); with ``bound`` it verifies only with that value."""
        payload = _payload(purpose, ident, expires_at)
        return _b64encode(payload + self._mac(purpose, payload, bound))

    @staticmethod
    def _parse(token: object) -> tuple[str, int, dt.datetime | None, bytes, bytes]:
        """(purpose name, id, expiry, payload, MAC) of a well-formed token: nothing verified yet."""
        if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or not _ALPHABET.fullmatch(token):
            raise TokenError("malformed")
        raw = _b64decode(token)
        if len(raw) < 3 + MAC_BYTES:
            raise TokenError("malformed")
        payload, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
        header, code = payload[0], payload[1]
        if header >> 4 != VERSION or header & 0x0F & ~_HAS_EXPIRY:
            raise TokenError("malformed")
        name = _PURPOSE_NAMES.get(code)
        if name is None:
            raise TokenError("malformed")
        ident, pos = _read_varint(payload, 2)
        expires_at = None
        if header & _HAS_EXPIRY:
            seconds, pos = _read_varint(payload, pos)
            expires_at = dt.datetime.fromtimestamp(seconds, dt.UTC)
        if pos != len(payload) or _payload(name, ident, expires_at) != payload:
            raise TokenError("malformed")  # trailing bytes or an overlong varint: not ours
        return name, ident, expires_at, payload, mac

    def claimed_id(self, token: object) -> int:
        """The id a well-formed token names, NOT verified (``TokenError`` when malformed): for
        finding the value a bound token must be verified with."""
        ident = self._parse(token)[1]
        if ident >= 1 << 63:  # no row has it (and a BIGINT could not hold it)
            raise TokenError("malformed")
        return ident

    def short_code(self, purpose: str, ident: int) -> str:
        """The code a person types: ``<id>-XXXX-XXXX`` (see ``normalise_short``)."""
        if purpose not in PURPOSES:
            raise ValueError(f"unknown token purpose: {purpose!r}")
        mac = _short_mac(self._key, purpose, ident)
        return f"{ident}-{mac[:4]}-{mac[4:]}"

    def verify_short(self, purpose: str, text: object) -> int:
        """The id a typed short code names, when it is genuine under the key (or a previous one);
        else ``TokenError``."""
        code = normalise_short(text)
        if code is None:
            raise TokenError("malformed")
        ident_text, mac = code.split("-")
        ident = int(ident_text)
        matches = [hmac.compare_digest(mac, _short_mac(key, purpose, ident)) for key in (self._key, *self._previous)]
        if not any(matches):
            raise TokenError("bad_signature")
        return ident

    @classmethod
    def claimed_purpose(cls, token: object) -> str | None:
        """The purpose a well-formed token names, NOT verified (None when malformed): for sending
        ``/start <token>`` to the flow that verifies it."""
        try:
            return cls._parse(token)[0]
        except TokenError:
            return None

    def verify(self, purpose: str, token: str, *, now: dt.datetime, bound: str | None = None) -> Claims:
        """The claims of a genuine, unexpired token made for ``purpose`` (and ``bound`` to that
        value, when it was); else ``TokenError``. ``now`` comes from the injected clock."""
        if purpose not in PURPOSES:
            raise ValueError(f"unknown token purpose: {purpose!r}")
        name, ident, expires_at, payload, mac = self._parse(token)
        # (every key is tried, so that the time taken does not tell which one matched)
        matches = [hmac.compare_digest(mac, self._mac(name, payload, bound, key))
                   for key in (self._key, *self._previous)]
        if not any(matches):
            raise TokenError("bad_signature")
        if name != purpose:
            raise TokenError("wrong_purpose")
        if expires_at is not None and now >= expires_at:
            raise TokenError("expired")
        return Claims(name, ident, expires_at)


# --- short codes: what a person types from paper ----------------------------------------------------
# ``<id>-XXXX-XXXX``: the row id and 40 bits of HMAC-SHA256(key, "kezek-short" NUL purpose NUL id)
# in Crockford's base32 (no I, L, O or U; typed in any case, O read as 0 and I, L as 1, spaces and
# dashes ignored). 40 bits guessed at the page's rate limit would take ages; the QR code carries
# the full token, this is for the kindergarten that cannot scan it.
_SHORT_DOMAIN = b"kezek-short\x00"
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CROCKFORD_READ = {**{c: i for i, c in enumerate(_CROCKFORD)}, "O": 0, "I": 1, "L": 1}
SHORT_MAC_CHARS = 8


def _crockford(raw: bytes) -> str:
    number = int.from_bytes(raw, "big")
    chars = []
    for _ in range(len(raw) * 8 // 5):
        number, digit = divmod(number, 32)
        chars.append(_CROCKFORD[digit])
    return "".join(reversed(chars))


def _short_mac(key: bytes, purpose: str, ident: int) -> str:
    message = _SHORT_DOMAIN + purpose.encode("ascii") + b"\x00" + str(ident).encode("ascii")
    return _crockford(hmac.new(key, message, hashlib.sha256).digest()[:SHORT_MAC_CHARS * 5 // 8])


def normalise_short(text: object) -> str | None:
    """A typed short code in its canonical form (``1234-7KQ2M9XD``: spaces and dashes dropped,
    upper case, O→0, I/L→1), or None when it cannot be one."""
    if not isinstance(text, str) or len(text) > 64:
        return None
    raw = "".join(ch for ch in text.upper() if ch not in " -\t")
    if not raw.isascii() or len(raw) <= SHORT_MAC_CHARS or not raw[:-SHORT_MAC_CHARS].isdigit():
        return None
    ident, mac = raw[:-SHORT_MAC_CHARS], raw[-SHORT_MAC_CHARS:]
    if any(ch not in _CROCKFORD_READ for ch in mac):
        return None
    mac = "".join(_CROCKFORD[_CROCKFORD_READ[ch]] for ch in mac)
    return f"{int(ident)}-{mac}" if len(ident) <= 19 else None


def fingerprint(token: object) -> str:
    """A token fit for a log line: its length and a short hash, never its text."""
    text = token if isinstance(token, str) else repr(token)
    digest = hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return f"{len(text)} chars, sha256 {digest}"


def key_from_setting(value: str) -> bytes:
    """The key of ``KEZEK_SIGNING_KEY`` (its UTF-8 bytes; bot/config.py checks the length)."""
    key = value.encode("utf-8")
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"KEZEK_SIGNING_KEY must be at least {MIN_KEY_BYTES} bytes")
    return key


async def read_stored_key(ctx: Ctx) -> bytes | None:
    secret = (await ctx.session.execute(
        select(SigningKey.secret).where(SigningKey.name == STORED_KEY_NAME))).scalar_one_or_none()
    return base64.urlsafe_b64decode(secret) if secret else None


async def stored_key(ctx: Ctx) -> bytes:
    """The database's key, made (32 random bytes) the first time it is needed. Two instances
    starting together both insert-or-ignore and then read the one that won."""
    key = await read_stored_key(ctx)
    if key is not None:
        return key
    await ctx.insert_ignore(SigningKey, [{
        "name": STORED_KEY_NAME, "secret": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii"),
        "created_at": ctx.now}], "name")
    key = await read_stored_key(ctx)
    assert key is not None
    return key
