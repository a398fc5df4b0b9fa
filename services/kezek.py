"""The service facade the front ends (bot, API, CLI) call. Each call is one unit of work:
one transaction with the change, its audit entries and the notices it causes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from services import chats, directory, linking, offers, queue, referrals, reminders, snapshots
from services.claiming import ClaimFacade
from services.clock import Clock
from services.context import Ctx
from services.doc_storage import DocumentStore
from services.documents import DocumentsFacade
from services.errors import LinkFailed, LinkLocked
from services.facade import FacadeBase
from services.notifications import NotificationFacade
from services.parsing import Row
from services.referral_check import ReferralCheckFacade
from services.registry import RegistryFacade
from services.settings import SettingsFacade
from services.staff import StaffFacade
from services.status import StatusFacade
from storage.db import Database
from storage.models import Application, OutboxMessage, Referral, Seat
from storage.models import Offer as OfferModel
from storage.queue_versions import fold_queue_changes

T = TypeVar("T")


class Kezek(StatusFacade, ClaimFacade, SettingsFacade, NotificationFacade, StaffFacade, ReferralCheckFacade,
            DocumentsFacade, RegistryFacade, FacadeBase):
    """The whole facade. Parts for one front-end flow live beside their services
    (services/status.py, services/claiming.py, services/settings.py, services/referral_check.py,
    services/documents.py) as mixins of FacadeBase.

    ``signing_key``: the key of signed tokens (KEZEK_SIGNING_KEY); None: the database's own;
    ``previous_signing_keys``: keys whose tokens still verify (KEZEK_SIGNING_KEY_PREVIOUS).
    ``document_store``: where privilege documents sent in the chat are kept (KEZEK_DOCUMENTS_DIR);
    None: a folder under ``services.documents.DEFAULT_DIR``, made on first use.
    ``public_url``: the public referral page's base (KEZEK_PUBLIC_URL), which referral QR codes open."""

    def __init__(self, db: Database, clock: Clock, *, signing_key: bytes | None = None,
                 previous_signing_keys: tuple[bytes, ...] = (),
                 document_store: DocumentStore | None = None, public_url: str = "") -> None:
        super().__init__(db, clock)
        self._signing_key = signing_key
        self._previous_signing_keys = previous_signing_keys
        self.document_store = document_store
        self.public_url = public_url

    # --- registry ---------------------------------------------------------------------------
    async def upsert_profiles(self, rows: Sequence[Row], actor: str = "registry") -> int:
        async with self.unit(actor) as ctx:
            return await directory.upsert_profiles(ctx, rows)

    async def upsert_districts(self, rows: Sequence[Row], actor: str = "registry") -> int:
        async with self.unit(actor) as ctx:
            return await directory.upsert_districts(ctx, rows)

    async def upsert_kindergartens(self, rows: Sequence[Row], actor: str = "registry") -> int:
        async with self.unit(actor) as ctx:
            return await directory.upsert_kindergartens(ctx, rows)

    async def import_applications(self, rows: Sequence[Row], actor: str = "registry",
                                  progress: Callable[[int], None] | None = None) -> queue.ImportReport:
        """All or nothing; ``progress(n)`` is told as each n rows are written (a progress bar)."""
        async with self.unit(actor) as ctx:
            report = await queue.import_applications(ctx, rows, progress)
            if report.released_seats:  # an offer made for an old place goes on to the next in line
                await offers.fill_free_seats(ctx, report.released_seats)
        await self.fold_queue_changes()  # (a whole registry's load: its changes, counted at once)
        return report

    async def withdraw_application(self, number: str, actor: str = "registry") -> Application:
        async with self.unit(actor) as ctx:
            return await offers.withdraw(ctx, number)

    async def set_calendar_day(self, day: dt.date, working: bool, name: str = "",
                               actor: str = "operator") -> None:
        async with self.unit(actor) as ctx:
            await directory.set_calendar_day(ctx, day, working, name)

    async def publish_seats(self, row: Row, actor: str = "registry") -> offers.PublishResult:
        async with self.unit(actor) as ctx:
            return await offers.publish_seats(ctx, row)

    async def admit(self, referral_id: int, actor: str = "kindergarten") -> Referral:
        async with self.unit(actor) as ctx:
            return await referrals.admit(ctx, referral_id)

    async def decide_documents(self, referral_id: int, accepted: bool, actor: str = "operator", *,
                               reason: object = None, note: object = None) -> Referral:
        """Accept or reject a referral's privilege documents; a rejection may give a reason code
        (``services.documents.REJECTION_REASONS``) and the operator's note."""
        async with self.unit(actor) as ctx:
            return await referrals.decide_documents(ctx, referral_id, accepted, reason, note)

    # --- parents ----------------------------------------------------------------------------
    async def queue_view(self, app_number: str, viewer: str | None = None) -> queue.QueueView:
        # The view needs no working-day calendar (one query less) and reads without the write
        # lock; only a number the viewer has not seen yet is written down, in the same
        # transaction (SQLite upgrades the read to a write when no one wrote in between).
        try:
            async with self.db.read() as session:
                ctx = await Ctx.open(session, self.clock.now(), viewer or "system", with_calendar=False)
                return await queue.look(ctx, app_number, viewer)
        except OperationalError:
            if viewer is None or not self.db.is_sqlite:
                raise
        # Someone wrote after our read began, so SQLite refused the upgrade: look again under
        # the write lock.
        async with self.unit(viewer, with_calendar=False) as ctx:
            return await queue.look(ctx, app_number, viewer)

    async def available_seats(self, app_number: str, state_order_only: bool = False) -> list[offers.AvailableSeat]:
        async with self.reading(small=True) as ctx:
            return await offers.available_seats(ctx, app_number, state_order_only=state_order_only)

    async def preview_claim(self, app_number: str, seat_id: int) -> offers.ClaimPlan:
        async with self.reading(small=True) as ctx:
            return await offers.plan_claim(ctx, app_number, seat_id)

    async def claim(self, app_number: str, seat_id: int, confirmed_by: str | None) -> list[Referral]:
        async with self.unit(confirmed_by or "anonymous") as ctx:
            return await offers.claim(ctx, app_number, seat_id, confirmed_by)

    async def chat_language(self, chat_id: int) -> str | None:
        async with self.reading(with_calendar=False, small=True) as ctx:
            return await chats.get_language(ctx.session, chat_id)

    async def set_chat_language(self, chat_id: int, lang: str) -> None:
        async with self.unit("telegram", with_calendar=False) as ctx:
            await chats.set_language(ctx, chat_id, lang)

    # --- sweeps -----------------------------------------------------------------------------
    async def run_sweeps(self) -> dict[str, int]:
        """Everything that fell due by now, idempotently: close passed offers, annul referrals
        past a deadline, end stop-lists, and offer free seats to whoever is first now."""
        async with self.unit("sweeper") as ctx:
            done = {"offers_expired": await offers.expire_offers(ctx)}
            done.update(await referrals.sweep_deadlines(ctx))
            done["stoplists_ended"] = await referrals.end_stoplists(ctx)
            done["offers_made"] = len(await offers.fill_free_seats(ctx))
            done["reminders"] = await reminders.remind(ctx)
            return done

    async def fold_queue_changes(self) -> int:
        """Fold the queues' counted changes into their versions' bases (storage.queue_versions):
        the sweep job's last step, and after an import. Returns how many were folded."""
        async with self.db.write() as session:
            return await fold_queue_changes(session)

    async def announce_moves(self) -> int:
        """The opt-in "your queue number moved" notices (the daily digest job)."""
        async with self.unit("sweeper", with_calendar=False) as ctx:
            return await reminders.announce_moves(ctx)

    async def snapshot_queue(self) -> int:
        """Today's (Asia/Almaty) queue-number snapshot, unless it was taken already (the
        nightly job and the catch-up at start). Returns the rows written."""
        async with self.unit("sweeper", with_calendar=False) as ctx:
            return await snapshots.take_snapshot(ctx)

    async def stats(self) -> dict[str, Any]:
        async with self.reading() as ctx:
            s = ctx.session

            async def by(col: Any) -> dict[str, int]:
                return {k: int(v) for k, v in (await s.execute(select(col, func.count()).group_by(col))).all()}

            return {
                "applications": await by(Application.status),
                "seats": await by(Seat.status),
                "offers": await by(OfferModel.status),
                "referrals": await by(Referral.status),
                "annulments": {k or "": v for k, v in (await by(Referral.annul_reason)).items() if k},
                "outbox": await by(OutboxMessage.status),
            }

    # --- linking a chat to an application ------------------------------------------------------
    async def _linking(self, step: Callable[[Ctx], Awaitable[T]]) -> T:
        """Linking steps keep their failures (a failed attempt counts towards the lock-out)."""
        return await self.unit_keeping(step, (LinkFailed, LinkLocked))

    async def check_link_application(self, chat_id: int, number: str, iin: str) -> linking.LinkTarget:
        return await self._linking(lambda ctx: linking.check_application(ctx, chat_id, number, iin))

    async def link_by_contact(self, chat_id: int, number: str, iin: str, contact_phone: str,
                              contact_user_id: int | None, sender_user_id: int | None) -> linking.LinkTarget:
        return await self._linking(lambda ctx: linking.link_by_contact(
            ctx, chat_id, number, iin, contact_phone, contact_user_id, sender_user_id))

    async def send_link_code(self, chat_id: int, number: str, iin: str) -> linking.LinkTarget:
        return await self._linking(lambda ctx: linking.send_email_code(ctx, chat_id, number, iin))

    async def link_by_code(self, chat_id: int, code: str) -> linking.LinkTarget:
        return await self._linking(lambda ctx: linking.link_by_code(ctx, chat_id, code))

    async def link_by_token(self, chat_id: int, token: str) -> linking.LinkTarget:
        """``/start <token>``: the deep link of the registration e-mail."""
        signer = await self.signer()
        return await self._linking(lambda ctx: linking.link_by_token(ctx, signer, chat_id, token))

    async def link_locked_until(self, chat_id: int) -> dt.datetime | None:
        async with self.reading(with_calendar=False, small=True) as ctx:
            return await linking.locked_until(ctx, chat_id)

    async def linked_applications(self, chat_id: int) -> list[linking.LinkTarget]:
        async with self.reading(with_calendar=False, small=True) as ctx:
            return await linking.linked_applications(ctx.session, chat_id)
