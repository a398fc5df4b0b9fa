"""The registry API's staff routes (bot/api/routes.py, services/staff.py): invite (a one-time
Telegram link, optionally e-mailed), list, revoke; every answer as the OpenAPI document says."""

from __future__ import annotations

from typing import Any

from services.errors import StaffInviteInvalid
from services.kezek import Kezek
from tests.support.api import AUTH, api_client, call, counts
from tests.support.world import World


async def test_invite_list_and_revoke_through_the_api(kz: Kezek, world: World) -> None:
    async with api_client(kz, bot_username="kezek_test_bot") as api:
        invited = await call(api, "POST", "/staff/invites", status=200,
                             json={"kindergarten": "KG1", "email": "staff@example.kz", "days": 3})
        assert invited["link"] == f"https://t.me/kezek_test_bot?start={invited['token']}"
        assert invited["emailed"] is True and invited["kindergarten"] == "KG1"
        listed = await call(api, "GET", "/staff", status=200, params={"kindergarten": "KG1"})
        assert [(r["kind"], r["id"]) for r in listed["staff"]] == [("invite", invited["id"])]

        await kz.accept_staff_invite(invited["token"], 4242)
        listed = await call(api, "GET", "/staff", status=200)
        assert [(r["kind"], r["user_id"]) for r in listed["staff"]] == [("staff", 4242)]
        ended = await call(api, "POST", "/staff/revoke", status=200, json={"kindergarten": "KG1", "user_id": 4242})
        assert ended == {"ended": 1}
        assert await call(api, "POST", "/staff/revoke", status=200,
                          json={"kindergarten": "KG1", "user_id": 4242}) == {"ended": 0}

        second = await call(api, "POST", "/staff/invites", status=200, json={"kindergarten": "KG1"})
        assert second["emailed"] is False
        assert await call(api, "POST", "/staff/invites/revoke", status=200,
                          json={"kindergarten": "KG1", "invite_id": second["id"]}) == {"ended": 1}
        try:
            await kz.accept_staff_invite(second["token"], 4343)
        except StaffInviteInvalid:
            pass
        else:
            raise AssertionError("a withdrawn invitation bound an account")
    async with api_client(kz) as api:  # the bot's username not configured: the token, no link
        third = await call(api, "POST", "/staff/invites", status=200, json={"kindergarten": "KG1"})
        assert third["link"] is None and third["token"]


async def test_bad_requests_change_nothing(kz: Kezek, world: World) -> None:
    async with api_client(kz) as api:
        before = await counts(kz)
        bad: list[tuple[str, str, Any, int]] = [
            ("POST", "/staff/invites", {"kindergarten": "NOPE"}, 422),
            ("POST", "/staff/invites", {"kindergarten": "KG1", "email": "not an address"}, 422),
            ("POST", "/staff/invites", {"kindergarten": "KG1", "days": 31}, 422),
            ("POST", "/staff/invites", {"kindergarten": "KG1", "days": True}, 422),
            ("POST", "/staff/invites", {}, 422),
            ("POST", "/staff/revoke", {"kindergarten": "KG1", "user_id": "4242"}, 422),
            ("POST", "/staff/revoke", {"kindergarten": "KG1"}, 422),
            ("POST", "/staff/invites/revoke", {"kindergarten": "KG1", "invite_id": 0}, 422),
            ("POST", "/staff/invites/revoke", {"kindergarten": "KG1", "invite_id": 2**31}, 422),
        ]
        for method, path, body, status in bad:
            await call(api, method, path, status=status, json=body, headers={**AUTH, "Accept-Language": "kk"})
        for code in ("\x00", "", "K" * 41):
            await call(api, "GET", "/staff", status=422, params={"kindergarten": code})
        await call(api, "POST", "/staff/invites", status=401, json={"kindergarten": "KG1"}, headers={})
        assert await counts(kz) == before
