"""The rule profile inside a hot statement: the profile a district follows (``Ctx.profile``'s rule,
``services.context.profile_id_of``) as columns, and back as a ``Rules`` value.

Every field of ``services.context.RULE_FIELDS`` is selected, and that list is every column of
``RuleProfile`` but its identity: a column added to the model reaches the hot reads with no edit
here (tests/services/test_reads_equivalence.py checks that each statement holds every field a rule reads,
and that each read gives ``Ctx.profile``'s values)."""

from __future__ import annotations

from typing import Any

from services.context import RULE_FIELDS, profile_id_of
from storage.hot import Record, record_type
from storage.models import RuleProfile

PREFIX = "profile_"
# One profile's rules, as the hot reads give them (``RuleProfile``'s attributes of the same names):
# a ``Record``, its fields RULE_FIELDS.
Rules = record_type("Rules", RULE_FIELDS)


def joined(district_id: Any) -> tuple[Any, Any]:
    """The (target, ON clause) to outer-join ``RuleProfile`` to a statement: the profile the
    district ``district_id`` (a column of the statement) follows."""
    return RuleProfile, RuleProfile.id == profile_id_of(district_id)


def columns() -> list[Any]:
    """The joined profile's id (NULL: no profile row, not even the default) and its rules, labelled
    ``profile_id`` and ``profile_<field>``."""
    return [RuleProfile.id.label(PREFIX + "id")] + [getattr(RuleProfile, f).label(PREFIX + f) for f in RULE_FIELDS]


def rules_of(row: Any) -> Record | None:
    """The rules of a row holding ``columns()``; None when it found no profile row."""
    if getattr(row, PREFIX + "id") is None:
        return None
    return Rules._make(getattr(row, PREFIX + f) for f in RULE_FIELDS)


def rules_from(profile: RuleProfile) -> Record:
    """The rules of a profile read through the ORM (``Ctx.profile``)."""
    return Rules._make(getattr(profile, f) for f in RULE_FIELDS)
