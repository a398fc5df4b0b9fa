"""The /status cards of a chat in one round trip (``CARDS``; ``CARDS_COUNTED`` with the queue
numbers counted), and ``reference``: the same rows read through the ORM and ``queue.view``'s
rules, which they must agree with. ``services.status`` turns a row into a card.

What the statement writes out in SQL: ``queue.view``'s reads (the open offer, the viewer's last
look, the live referral of an application out of the queue), the preferred kindergartens in the
parent's order (``queue.preferred_codes``) and the forecast's move over its window
(``queue.events_ahead`` ahead of the application since the window's start). The queue number is
``queue.count_ahead`` itself."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import and_, bindparam, case, func, literal_column, select, tuple_
from sqlalchemy.orm import aliased

from services import queue
from services.context import Ctx
from services.directory import KindergartenInfo
from storage.hot import AnySelect, Hot, Record, json_rows, json_rows_of, record_type
from storage.models import (
    Application,
    ApplicationPreference,
    ChatLink,
    District,
    Kindergarten,
    Offer,
    QueueEvent,
    QueueLook,
    Referral,
    UTCDateTime,
)
from storage.queue_versions import queue_version
from storage.vocab import AppStatus, OfferStatus, ReferralStatus


def _forecast_net() -> Any:
    """SQL: the net signed move of the outer query's application over the forecast window (what
    ``services.status.forecast_of`` takes as ``net``; a range of ix_queue_events_queue_at): the
    events ahead of it after ``:window_from`` (now - FORECAST_DAYS) and after it joined. NULL,
    with nothing read, for an application not waiting or that joined after ``:joined_by`` (now -
    FORECAST_MIN_DAYS): too early for a forecast."""
    A, E = Application, QueueEvent
    net = select(func.coalesce(func.sum(E.delta), 0)).where(
        E.district_id == A.district_id, E.birth_year == A.birth_year,
        E.at > bindparam("window_from", type_=UTCDateTime()), E.at > A.created_at,
        E.application_id != A.id,
        tuple_(E.priv_rank, E.submitted_at, E.number) < tuple_(A.priv_rank, A.submitted_at, A.number),
    ).scalar_subquery()
    return case((and_(A.status == AppStatus.QUEUED, A.created_at <= bindparam("joined_by", type_=UTCDateTime())),
                 net), else_=None)


def _preferred_rows() -> Any:
    """SQL: the outer query's application's preferred kindergartens as ``json_rows`` of
    (rank, code, name_ru, name_kk); none for an "any kindergarten" application (not shown)."""
    A, P = Application, ApplicationPreference
    K = aliased(Kindergarten)  # not the referral's kindergarten of the outer query
    rows = (select(json_rows(P.rank, K.code, K.name_ru, K.name_kk))
            .select_from(P).join(K, K.id == P.kindergarten_id)
            .where(P.application_id == A.id).scalar_subquery())
    return case((A.any_kindergarten.is_(False), rows), else_=None)


def _card_statement(*, count: bool) -> AnySelect:
    """One round trip for every card of a chat: each linked application with its district, its
    queue's version (``storage.queue_versions``) and, with ``count``, its queue number (a
    correlated count on ix_applications_queue: ``services.queue_numbers`` spares it), open offer (at most one:
    uq_offers_open_application), this chat's last look, a live referral (at most one:
    uq_referrals_live_application) with its kindergarten, the preferred kindergartens and the
    forecast's move over the last days. Core columns, not ORM objects: the cards are read-only,
    and loading instances cost more than the query. One statement, so one snapshot on
    PostgreSQL too, and one round trip instead of three: each costs the bot more CPU (the
    socket write and the wake-up) than the server spends on these index lookups.

    Parameters: ``chat_id``, ``viewer`` (the chat's, ``services.chats.chat_viewer``), and the
    forecast's ``window_from`` and ``joined_by`` (``_forecast_net``)."""
    A = Application
    return (
        select(A.id, A.number, A.child_iin, A.birth_year, A.status, A.privilege, A.any_kindergarten,
               A.district_id, A.priv_rank, A.submitted_at, A.stoplist_until, A.created_at,
               District.name_ru.label("district_ru"), District.name_kk.label("district_kk"),
               queue_version(A.district_id, A.birth_year).label("queue_version"),
               (queue.count_ahead() if count else literal_column("NULL")).label("ahead"),
               Offer.id.label("offer_id"), Offer.expires_at.label("offer_expires_at"),
               QueueLook.number.label("look_number"), QueueLook.at.label("look_at"),
               Referral.id.label("referral_id"), Referral.showup_due_at, Referral.docs_state,
               Referral.docs_due_at,
               Kindergarten.code.label("kg_code"), Kindergarten.name_ru.label("kg_name_ru"),
               Kindergarten.name_kk.label("kg_name_kk"), Kindergarten.address.label("kg_address"),
               _preferred_rows().label("preferred"), _forecast_net().label("forecast_net"))
        .join(ChatLink, ChatLink.application_id == A.id)
        .join(District, District.id == A.district_id)
        .outerjoin(Offer, and_(Offer.application_id == A.id, Offer.status == OfferStatus.OPEN))
        .outerjoin(QueueLook, and_(QueueLook.application_id == A.id, QueueLook.viewer == bindparam("viewer")))
        # A waiting application holds no live referral.
        .outerjoin(Referral, and_(Referral.application_id == A.id, A.status != AppStatus.QUEUED,
                                  # (literal values, as in the partial index's WHERE, so that
                                  # SQLite uses it: bound values it cannot match to the index)
                                  Referral.status.in_([literal_column(f"'{s}'") for s in ReferralStatus.LIVE])))
        .outerjoin(Kindergarten, Kindergarten.id == Referral.kindergarten_id)
        .where(ChatLink.chat_id == bindparam("chat_id"))
        .order_by(ChatLink.linked_at, A.number)
    )


CARDS = Hot(_card_statement(count=False))
CARDS_COUNTED = Hot(_card_statement(count=True))
# A row of ``reference``: the statement's columns, by the same names.
CardRow = record_type("CardRow", CARDS.statement.selected_columns.keys())


def preferred_of(row: Any) -> list[KindergartenInfo]:
    """The preferred kindergartens of a card's row, in the parent's order."""
    return [KindergartenInfo(code, name_ru, name_kk)
            for _rank, code, name_ru, name_kk in sorted(json_rows_of(row.preferred), key=lambda r: r[0])]


async def reference(ctx: Ctx, params: Mapping[str, Any]) -> list[Record]:
    """``CARDS_COUNTED``'s rows for ``params`` (its parameters), read through the ORM: ``queue.view``
    (number, open offer, last look, live referral), ``queue.events_ahead`` summed over the
    forecast's window, the preferences in their rank order."""
    session = ctx.session
    apps = (await session.execute(
        select(Application).join(ChatLink, ChatLink.application_id == Application.id)
        .where(ChatLink.chat_id == params["chat_id"]).order_by(ChatLink.linked_at, Application.number))).scalars().all()
    out: list[Record] = []
    for app in apps:
        view = await queue.view(ctx, app.number, params["viewer"], with_preferred=False)
        offer = view.open_offers[0] if view.open_offers else None
        referral = view.referral
        kg = await session.get(Kindergarten, referral.kindergarten_id) if referral is not None else None
        preferred = None
        if not app.any_kindergarten:
            preferred = json.dumps([list(r) for r in (await session.execute(
                select(ApplicationPreference.rank, Kindergarten.code, Kindergarten.name_ru, Kindergarten.name_kk)
                .join(Kindergarten, Kindergarten.id == ApplicationPreference.kindergarten_id)
                .where(ApplicationPreference.application_id == app.id)
                .order_by(ApplicationPreference.rank))).all()])
        net = None
        if app.status == AppStatus.QUEUED and app.created_at <= params["joined_by"]:
            since = max(params["window_from"], app.created_at)
            net = sum(delta for _at, delta, _cause in await queue.events_ahead(session, app, since))
        out.append(CardRow(
            id=app.id, number=app.number, child_iin=app.child_iin, birth_year=app.birth_year, status=app.status,
            privilege=app.privilege, any_kindergarten=app.any_kindergarten, district_id=app.district_id,
            priv_rank=app.priv_rank, submitted_at=app.submitted_at, stoplist_until=app.stoplist_until,
            created_at=app.created_at, district_ru=view.district.name_ru, district_kk=view.district.name_kk,
            queue_version=(await session.execute(select(queue_version(app.district_id, app.birth_year)))).scalar_one(),
            ahead=view.number - 1 if view.number is not None else None,
            offer_id=offer.id if offer else None, offer_expires_at=offer.expires_at if offer else None,
            look_number=view.previous, look_at=view.previous_at,
            referral_id=referral.id if referral else None,
            showup_due_at=referral.showup_due_at if referral else None,
            docs_state=referral.docs_state if referral else None,
            docs_due_at=referral.docs_due_at if referral else None,
            kg_code=kg.code if kg else None, kg_name_ru=kg.name_ru if kg else None,
            kg_name_kk=kg.name_kk if kg else None, kg_address=kg.address if kg else None,
            preferred=preferred, forecast_net=net))
    return out
