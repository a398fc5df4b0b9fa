"""Every button's data in one place (aiogram ``CallbackData``): what a press carries, parsed and
checked by aiogram before a handler sees it. The delivery side (bot/delivery) puts the same
buttons on notices, so this module is their one shared definition; the prefixes are part of
the buttons already sent and must not change."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData


# handlers/claim.py
class SeatsCallback(CallbackData, prefix="seats"):
    """Show the seats an application may claim now (from a "your turn" alert or the status)."""

    app: int

class ClaimCallback(CallbackData, prefix="claim"):
    """``step``: 'p' shows the preview of ``seat`` for ``app``, 'c' confirms the claim."""

    app: int
    seat: int
    step: str


# handlers/documents.py
class DocsCallback(CallbackData, prefix="docs"):
    """``h``: how to send the documents of an application (the status card's button);
    ``p``: the files just sent are for this application."""

    action: str
    app: int


# handlers/link.py
class LinkCallback(CallbackData, prefix="link"):
    action: str


# handlers/settings.py
class NoticeCallback(CallbackData, prefix="ntc"):
    """Turn an optional notice on or off: the wanted state, so a double press changes nothing."""

    key: str
    on: bool

class SettingsCallback(CallbackData, prefix="stg"):
    action: str  # 'lang' | 'email' | 'rmemail' | 'cancel'


# handlers/start.py
class LangCallback(CallbackData, prefix="lang"):
    code: str


# handlers/status.py
class HistoryCallback(CallbackData, prefix="hist"):
    """Show the history of an application's queue number."""

    app: int

class ReferralPdfCallback(CallbackData, prefix="refpdf"):
    """Send the referral of an application again, as its PDF."""

    app: int


# handlers/unlink.py
class UnlinkCallback(CallbackData, prefix="unl"):
    action: str  # 'ask' | 'yes' | 'no'
    app_id: int


class StaffCallback(CallbackData, prefix="staff"):
    """A kindergarten staff member's press on a referral (handlers/staff.py): ``act`` "a" (the
    child has come: admit) or "n" (the child has not come)."""

    ref: int
    act: str
