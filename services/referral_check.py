"""The verifiable referral: what its PDF shows, and what a kindergarten learns from its QR code.

A referral's token (``services.signing``, purpose ``referral``) names the referral and nothing
else; everything a kindergarten is told comes from the database at the moment it asks, so a
token stays the same while the referral goes from issued to admitted or annulled. The answer
(``Verdict``) is one of

* ``valid``: genuine, issued, its show-up deadline (and a privilege's documents deadline) not
  passed at the clock's now: the kindergarten may admit the child;
* ``admitted``: genuine but used: the child has been admitted on it;
* ``annulled``: genuine but annulled (a missed deadline, rejected documents);
* ``expired``: genuine, not annulled yet, but a deadline has passed (the sweep will annul it);
* ``refused``: not a token of ours: forged, altered, cut, made under another key or for another
  purpose, or naming no referral. One answer for all of these; the reason goes to the log with a
  fingerprint of the token (``signing.fingerprint``), never its text.

A genuine answer carries what the door needs to check the child: the application number, the
child's masked IIN, the kindergarten, the group, the dates. Never the full IIN, a phone or an
e-mail address."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from services import signing
from services.calendar import ALMATY
from services.context import Ctx
from services.directory import KindergartenInfo
from services.errors import ReferralNotFound
from services.facade import FacadeBase, is_row_id
from services.signing import Signer, TokenError
from services.validation import initials, mask_iin
from storage.models import Application, Group, Kindergarten, Referral
from storage.vocab import DocsState, ReferralStatus

log = logging.getLogger("kezek.referrals")

PURPOSE = "referral"

VALID = "valid"
ADMITTED = "admitted"
ANNULLED = "annulled"
EXPIRED = "expired"
REFUSED = "refused"
STATES = (VALID, ADMITTED, ANNULLED, EXPIRED, REFUSED)


@dataclass(frozen=True)
class ReferralFacts:
    """A referral as its paper and its check show it (no personal data beyond the masked IIN)."""

    referral_id: int
    application: str  # the application number
    child_iin_masked: str
    kindergarten: KindergartenInfo
    group_name: str
    group_language: str
    birth_year: int
    status: str  # issued | admitted | annulled
    issued_at: dt.datetime
    valid_until: dt.datetime  # the show-up deadline (exclusive)
    docs_state: str
    docs_due_at: dt.datetime | None
    closed_at: dt.datetime | None  # when it was admitted or annulled
    annul_reason: str | None
    child_initials: str = ""  # «А. А.»: all the public page shows of the child


@dataclass(frozen=True)
class ReferralDocument:
    """What the referral's PDF shows: the facts and the token of its QR code."""

    facts: ReferralFacts
    token: str
    address: str | None = None  # <KEZEK_PUBLIC_URL>/r/<token> when the service has a public page
    short: str = ""  # the code a person types (services.signing: <id>-XXXX-XXXX)

    @property
    def qr_content(self) -> str:
        """What the QR code holds: the page's address, else the bare token (checked by the registry)."""
        return self.address or self.token

    @property
    def page(self) -> str | None:
        """The page where the code can be typed by hand (the address without the code)."""
        return self.address.rsplit("/", 1)[0] if self.address else None


@dataclass(frozen=True)
class Verdict:
    state: str  # one of STATES
    facts: ReferralFacts | None = None  # None when refused

    @property
    def genuine(self) -> bool:
        return self.state != REFUSED

    @property
    def valid(self) -> bool:
        return self.state == VALID


def _moment(value: dt.datetime | None) -> str | None:
    return value.astimezone(ALMATY).isoformat() if value is not None else None


def verdict_as_dict(verdict: Verdict) -> dict[str, Any]:
    """The verdict as JSON for the API and ``kezek referrals verify --json`` (moments in Almaty
    time, like every answer of the API); ``referral`` is null when refused."""
    facts = verdict.facts
    referral = None
    if facts is not None:
        kg = facts.kindergarten
        referral = {
            "id": facts.referral_id, "application": facts.application,
            "child_iin_masked": facts.child_iin_masked,
            "kindergarten": {"code": kg.code, "name_ru": kg.name_ru, "name_kk": kg.name_kk, "address": kg.address},
            "group": {"name": facts.group_name, "language": facts.group_language, "birth_year": facts.birth_year},
            "status": facts.status, "issued_at": _moment(facts.issued_at),
            "valid_until": _moment(facts.valid_until), "docs_state": facts.docs_state,
            "docs_due_at": _moment(facts.docs_due_at), "closed_at": _moment(facts.closed_at),
            "annul_reason": facts.annul_reason,
        }
    return {"state": verdict.state, "genuine": verdict.genuine, "valid": verdict.valid, "referral": referral}


_FACTS = (select(Referral, Application.number, Kindergarten, Group, Application.child_name)
          .join(Application, Application.id == Referral.application_id)
          .join(Kindergarten, Kindergarten.id == Referral.kindergarten_id)
          .join(Group, Group.id == Referral.group_id))


async def referral_facts(ctx: Ctx, referral_id: int) -> ReferralFacts:
    """``ReferralNotFound`` for an unknown id."""
    if not is_row_id(referral_id):
        raise ReferralNotFound()
    row = (await ctx.session.execute(_FACTS.where(Referral.id == referral_id))).one_or_none()
    if row is None:
        raise ReferralNotFound()
    ref, number, kg, group, child_name = row
    return ReferralFacts(
        referral_id=ref.id, application=number, child_iin_masked=mask_iin(ref.child_iin),
        kindergarten=KindergartenInfo.of(kg), group_name=group.name or "", group_language=group.language,
        birth_year=group.birth_year, status=ref.status, issued_at=ref.issued_at,
        valid_until=ref.showup_due_at, docs_state=ref.docs_state, docs_due_at=ref.docs_due_at,
        closed_at=ref.closed_at, annul_reason=ref.annul_reason, child_initials=initials(child_name))


def state_of(facts: ReferralFacts, now: dt.datetime) -> str:
    if facts.status == ReferralStatus.ADMITTED:
        return ADMITTED
    if facts.status == ReferralStatus.ANNULLED:
        return ANNULLED
    if now >= facts.valid_until:
        return EXPIRED
    if facts.docs_state == DocsState.PENDING and facts.docs_due_at is not None and now >= facts.docs_due_at:
        return EXPIRED  # the privilege documents did not come: annulled at the next sweep
    return VALID


# The public page that checks a code (bot/web/page.py serves it): <KEZEK_PUBLIC_URL>/r/<code>.
PAGE_PATH = "/r"


def check_address(public_url: str, token: str) -> str:
    """The address a referral's QR code opens when the service has a public page."""
    return f"{public_url.rstrip('/')}{PAGE_PATH}/{token}"


def referral_token(signer: Signer, referral_id: int) -> str:
    return signer.sign(PURPOSE, referral_id)


async def referral_document(ctx: Ctx, signer: Signer, referral_id: int, public_url: str = "") -> ReferralDocument:
    facts = await referral_facts(ctx, referral_id)
    token = referral_token(signer, referral_id)
    return ReferralDocument(facts, token, check_address(public_url, token) if public_url else None,
                            signer.short_code(PURPOSE, referral_id))


async def verify(ctx: Ctx, signer: Signer, token: str) -> Verdict:
    """The verdict on a token a kindergarten scanned or typed (see the module's docstring)."""
    token = token.strip() if isinstance(token, str) else token
    try:
        if signing.normalise_short(token) is not None:  # typed from the paper
            referral_id = signer.verify_short(PURPOSE, token)
        else:
            referral_id = signer.verify(PURPOSE, token, now=ctx.now).id
        facts = await referral_facts(ctx, referral_id)
    except TokenError as exc:
        log.warning("referral token refused: %s (%s)", exc.reason, signing.fingerprint(token))
        return Verdict(REFUSED)
    except ReferralNotFound:
        # Genuine under our key, but no such referral (a restored backup, another database).
        log.warning("referral token refused: no such referral (%s)", signing.fingerprint(token))
        return Verdict(REFUSED)
    state = state_of(facts, ctx.now)
    log.info("referral %s checked: %s", facts.referral_id, state)
    return Verdict(state, facts)


class ReferralCheckFacade(FacadeBase):
    """The signer (the configured key, or the database's) and the referral's paper and check."""

    _signing_key: bytes | None = None  # KEZEK_SIGNING_KEY; None: the database's key
    _previous_signing_keys: tuple[bytes, ...] = ()  # KEZEK_SIGNING_KEY_PREVIOUS
    _signer: Signer | None = None
    public_url: str = ""  # KEZEK_PUBLIC_URL: the referral's QR code opens the public page there

    async def signer(self) -> Signer:
        if self._signer is None:
            key = self._signing_key
            if key is None:
                async with self.reading(with_calendar=False) as ctx:
                    key = await signing.read_stored_key(ctx)
            if key is None:
                async with self.unit("system", with_calendar=False) as ctx:
                    key = await signing.stored_key(ctx)
            self._signer = Signer(key, self._previous_signing_keys if self._signing_key is not None else ())
        return self._signer

    async def referral_document(self, referral_id: int) -> ReferralDocument:
        signer = await self.signer()
        async with self.reading(with_calendar=False) as ctx:
            return await referral_document(ctx, signer, referral_id, self.public_url)

    async def verify_referral(self, token: str) -> Verdict:
        signer = await self.signer()
        async with self.reading(with_calendar=False) as ctx:
            return await verify(ctx, signer, token)
