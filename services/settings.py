"""Facade part for one flow of the front end (filled in by its flow's work)."""

from __future__ import annotations

from services.facade import FacadeBase


class SettingsFacade(FacadeBase):
    pass
