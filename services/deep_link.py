"""One-tap linking: the registration e-mail's deep link ``https://t.me/<bot>?start=<token>``.

When the registry loads a new application, its import writes a ``registration`` notice (e-mail
only, to the application's address) in the same transaction (``services.queue``). The e-mail
carries a token (``services.signing``, purpose ``link``) naming the application and expiring
``LINK_TOKEN_TTL`` after the registration; ``/start <token>`` links the chat at once
(``services.linking.link_by_token``): the e-mail address on the application is the proof.

The token is made when the e-mail is rendered (never stored: the outbox holds only the
application id and the expiry), so it is the same on every retry of that e-mail. Its use is
recorded in ``used_tokens`` (by its SHA-256), which makes it single-use. It is bound to the address
the e-mail went to (``link_binding``): once the registry gives the application another address,
the links sent to the old one no longer work.

No aiogram here."""

from __future__ import annotations

import datetime as dt
import hashlib
import re

from services.notices import NoticeKind
from services.signing import Signer

PURPOSE = "link"
REGISTRATION_KIND = NoticeKind.REGISTRATION  # (the kind is defined in services.notices)
LINK_TOKEN_TTL = dt.timedelta(days=14)

# Telegram's rule for a bot's username (5-32 characters, ends in "bot"; compared case-insensitively).
_USERNAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{3,31}")


def registration_key(application_id: int, email: str | None = None) -> str:
    """The dedupe key of an application's registration notice: one when it is registered, and one
    for each address the registry later gives it (``email``)."""
    if email is None:
        return f"{REGISTRATION_KIND}:{application_id}"
    digest = hashlib.sha256(link_binding(email).encode("utf-8")).hexdigest()[:16]
    return f"{REGISTRATION_KIND}:{application_id}:{digest}"


def token_expiry(registered_at: dt.datetime) -> dt.datetime:
    """When the deep link of an application registered at ``registered_at`` stops working
    (whole seconds: the token carries seconds)."""
    return (registered_at + LINK_TOKEN_TTL).replace(microsecond=0)


def link_binding(email: str | None) -> str:
    """What a link token is bound to: the e-mail address it is sent to (``services.signing``,
    ``bound``). The registry changing the application's address makes every link sent to the old
    one refused."""
    return (email or "").strip().casefold()


def link_token(signer: Signer, application_id: int, expires_at: dt.datetime, email: str) -> str:
    return signer.sign(PURPOSE, application_id, expires_at=expires_at, bound=link_binding(email))


def valid_username(username: str | None) -> str | None:
    """The bot's username without a leading ``@`` when it is a possible Telegram username, else None."""
    name = (username or "").strip().lstrip("@")
    return name if _USERNAME.fullmatch(name) else None


def deep_link(username: str, token: str) -> str:
    return f"https://t.me/{username}?start={token}"
