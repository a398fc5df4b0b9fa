"""Claiming a seat: the seats open to an application → a seat's preview (kindergarten, group,
deadlines) → confirm → referral. Every press is authorised again on the server."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters.callback_data import CallbackData


class SeatsCallback(CallbackData, prefix="seats"):
    """Show the seats an application may claim now (from a "your turn" alert or the status)."""

    app: int


class ClaimCallback(CallbackData, prefix="claim"):
    """``step``: 'p' shows the preview of ``seat`` for ``app``, 'c' confirms the claim, 'x' cancels."""

    app: int
    seat: int
    step: str


def build_router() -> Router:
    """A fresh router (a router can belong to one Dispatcher only)."""
    return Router(name="claim")
