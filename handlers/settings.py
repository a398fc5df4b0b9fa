"""/settings (filled in by its flow's work)."""

from __future__ import annotations

from aiogram import Router


def build_router() -> Router:
    """A fresh router (a router can belong to one Dispatcher only)."""
    return Router(name="settings")
