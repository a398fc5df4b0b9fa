"""The domain's vocabulary (storage/vocab.py): StrEnums whose members are the very words the
database stores and the front ends show, written into hot SQL as the same literals and bound by
both drivers as plain text; the default claim window is one fact that its three readers share."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import bindparam, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import asyncpg as pg_asyncpg

import storage.models
from services.kezek import Kezek
from storage.db import Database
from storage.hot import Hot
from storage.models import Application, Kindergarten, RuleProfile
from storage.vocab import (
    DEFAULT_WINDOW_CLOSE_MINUTE,
    DEFAULT_WINDOW_OPEN_MINUTE,
    AppStatus,
    DocsState,
    DocumentStatus,
    KindergartenKind,
    OfferStatus,
    Privilege,
    ReferralStatus,
    SeatStatus,
)
from tests.support.world import World

STORED = {
    AppStatus: ["queued", "referred", "admitted", "removed", "withdrawn"],
    Privilege: ["out_of_turn", "first", "none"],
    DocsState: ["not_required", "pending", "accepted", "rejected", "missed"],
    SeatStatus: ["free", "offered", "open", "taken", "withdrawn"],
    OfferStatus: ["open", "claimed", "expired", "cancelled"],
    ReferralStatus: ["issued", "admitted", "annulled"],
    KindergartenKind: ["state", "private_state_order"],
    DocumentStatus: ["pending", "accepted", "rejected", "closed"],
}


@pytest.mark.parametrize("vocabulary", list(STORED), ids=lambda v: v.__name__)
def test_each_member_is_the_word_the_database_stores(vocabulary: type) -> None:
    assert [m.value for m in vocabulary] == STORED[vocabulary]  # type: ignore[attr-defined]
    for member in vocabulary:  # type: ignore[attr-defined]
        word = member.value
        assert member == word and hash(member) == hash(word)
        assert (str(member), f"{member}", "%s" % member,  # noqa: UP031 - %-formatting is what is tested
                format(member, ">3")[-len(word):]) == (word,) * 4
        assert json.dumps({member: [member]}) == json.dumps({word: [word]})


def test_the_lists_beside_the_members_hold_plain_words() -> None:
    assert Privilege.ALL == ("out_of_turn", "first", "none")
    assert Privilege.RANK == {"out_of_turn": 0, "first": 1, "none": 2}
    assert Privilege.RANK[Privilege.FIRST] == 1
    assert ReferralStatus.LIVE == ("issued", "admitted")
    assert KindergartenKind.ALL == ("state", "private_state_order")
    assert DocumentStatus.ALL == ("pending", "accepted", "rejected", "closed")
    for words in (Privilege.ALL, ReferralStatus.LIVE, KindergartenKind.ALL, DocumentStatus.ALL):
        assert all(type(w) is str for w in words)


def test_the_models_module_no_longer_holds_the_vocabulary() -> None:
    for name in [v.__name__ for v in STORED]:
        assert not hasattr(storage.models, name), f"storage.models.{name}: import it from storage.vocab"


@pytest.mark.parametrize("dialect", [sqlite.dialect(), pg_asyncpg.dialect()], ids=["sqlite", "postgresql"])
def test_a_hot_statement_writes_a_member_as_the_plain_word(dialect: Any) -> None:
    """``Hot`` writes the statement's constants into its SQL as literals (``_inline_constants``)."""
    hot = Hot(select(Application.id).where(Application.status == AppStatus.QUEUED,
                                           (Application.privilege == Privilege.FIRST)
                                           | (Application.number == bindparam("number"))))
    plan = hot.plan(dialect)
    assert "'queued'" in plan.sql and "'first'" in plan.sql
    assert "AppStatus" not in plan.sql and "Privilege" not in plan.sql
    assert [name for name, _value, _process in plan.binds] == ["number"]


async def test_both_drivers_bind_a_member_as_text_and_read_the_word_back(db: Database, world: World) -> None:
    async with db.write() as session:
        await session.execute(text("UPDATE kindergartens SET kind = :kind WHERE code = 'KG2'"),
                              {"kind": KindergartenKind.PRIVATE})
        await session.execute(
            Kindergarten.__table__.update().where(Kindergarten.code == "KG1").values(kind=KindergartenKind.PRIVATE))
    async with db.read() as session:
        kinds = dict((await session.execute(
            select(Kindergarten.code, Kindergarten.kind).where(Kindergarten.kind == KindergartenKind.PRIVATE))).all())
        assert kinds == {"KG1": "private_state_order", "KG2": "private_state_order", "PRIV": "private_state_order"}
        assert all(type(kind) is str for kind in kinds.values())
        same = (await session.execute(text("SELECT count(*) FROM kindergartens WHERE kind = :k"),
                                      {"k": KindergartenKind.PRIVATE})).scalar_one()
        assert same == 3
    async with db.hot() as hot:  # the driver's own connection (sqlite3 or asyncpg), a bound member
        rows = await hot.all(Hot(select(Kindergarten.code).where(Kindergarten.kind == bindparam("kind"))
                                 .order_by(Kindergarten.code)), {"kind": KindergartenKind.PRIVATE})
    assert [r.code for r in rows] == ["KG1", "KG2", "PRIV"]


def test_the_cli_shows_the_documents_default_as_the_word() -> None:
    from bot.cli import cli

    shown = CliRunner().invoke(cli, ["documents", "list", "--help"]).output
    assert "[default: pending]" in " ".join(shown.split())


async def test_the_default_claim_window_is_nine_to_eight_for_all_its_readers(kz: Kezek) -> None:
    from bot.jobs import DEFAULT_WINDOW

    assert (DEFAULT_WINDOW_OPEN_MINUTE, DEFAULT_WINDOW_CLOSE_MINUTE) == (9 * 60, 20 * 60)  # RULES.md
    assert DEFAULT_WINDOW == (9 * 60, 20 * 60)  # the jobs' schedule, with no profile stored
    columns = RuleProfile.__table__.c
    assert (columns.window_open_minute.default.arg, columns.window_close_minute.default.arg) == (540, 1200)
    await kz.upsert_profiles([{"code": "plain"}])  # the profiles' import, no window given
    async with kz.db.read() as session:
        plain = (await session.execute(select(RuleProfile).where(RuleProfile.code == "plain"))).scalar_one()
    assert (plain.window_open_minute, plain.window_close_minute) == (540, 1200)
