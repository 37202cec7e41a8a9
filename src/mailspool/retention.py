"""How long finished, failed and event records are kept: ``MAILSPOOL_RETENTION``.

``finished=14d,failed=90d,events=180d``: comma-separated ``STATE=AGE`` pairs, each state
at most once, an age a whole number of hours, days or weeks (``12h``, ``30d``, ``2w``) from
1 hour to 10 years. A state left out is kept for ever. Nothing else is a state: pending,
scheduled, claimed, paused and fallback records are never expired, so no spelling of
this setting can name them. The parser is strict: an unknown state, a repeated one, an
age without a unit or out of range is refused with a message naming the part and rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["DEFAULT_RETENTION", "PREFIXES", "Retention", "RetentionState", "parse_retention"]


class RetentionState(StrEnum):
    """A state whose records may expire (``MAILSPOOL_RETENTION``'s names)."""

    FINISHED = "finished"  # done/ and the batch's ledger/
    FAILED = "failed"  # failed/
    EVENTS = "events"  # events/, history/, events-seen/, complaints-bounces/


#: The store folders each state's records are in: what an S3 lifecycle rule expires by
#: prefix (``aws/template.yaml``, ``aws/bucket_setup.py``); ``gc`` reads the same folders.
PREFIXES = {
    RetentionState.FINISHED: ("done/", "ledger/"),
    RetentionState.FAILED: ("failed/",),
    RetentionState.EVENTS: ("events/", "history/", "events-seen/", "complaints-bounces/"),
}

_UNITS = {"h": 3600, "d": 86400, "w": 7 * 86400}
_MIN_AGE = 3600
_MAX_AGE = 3650 * 86400
_MAX_TEXT = 200
_PART = re.compile(r"([a-z]+)=([0-9]{1,6})([a-z]?)")
STATES_RULE = ", ".join(s.value for s in RetentionState)


@dataclass(frozen=True, slots=True)
class Retention:
    """The age in seconds after which each state's records go (None: kept for ever)."""

    finished: float | None = None
    failed: float | None = None
    events: float | None = None

    def of(self, state: RetentionState) -> float | None:
        age: float | None = getattr(self, state.value)
        return age

    def __str__(self) -> str:
        return ",".join(
            f"{state.value}={_shown(age)}"
            for state in RetentionState
            if (age := self.of(state)) is not None
        )


def _shown(age: float) -> str:
    days, rest = divmod(int(age), 86400)
    return f"{days}d" if not rest else f"{int(age) // 3600}h"


def parse_retention(value: Any) -> Retention:
    """``finished=30d,failed=90d`` -> ``Retention``; a ``Retention`` as it is; ValueError
    naming the part and the rule otherwise (an empty text: nothing expires)."""
    if isinstance(value, Retention):
        return value
    if not isinstance(value, str):
        raise TypeError(f"must be text, not {type(value).__name__}")
    if len(value) > _MAX_TEXT:
        raise ValueError(f"longer than {_MAX_TEXT} characters")
    ages: dict[str, float] = {}
    for part in (p.strip() for p in value.split(",")):
        if not part and not value.strip():
            continue
        state, age = _part(part)
        if state in ages:
            raise ValueError(f"{state!r} is given twice")
        ages[state] = age
    return Retention(**ages)


def _part(part: str) -> tuple[str, float]:
    match = _PART.fullmatch(part.lower())
    if match is None:
        raise ValueError(f"{part[:40]!r} is not STATE=AGE (e.g. finished=30d)")
    state, number, unit = match.groups()
    if state not in {s.value for s in RetentionState}:
        raise ValueError(f"{state!r} is not a state that expires: {STATES_RULE}")
    if unit not in _UNITS:
        raise ValueError(f"{part!r}: the age needs a unit, h, d or w (e.g. 30d)")
    age = float(int(number) * _UNITS[unit])
    if not _MIN_AGE <= age <= _MAX_AGE:
        raise ValueError(f"{part!r}: the age must be from 1h to 3650d")
    return state, age


#: Matches the S3 lifecycle rules' defaults in ``aws/template.yaml``.
DEFAULT_RETENTION = Retention(finished=14 * 86400.0, failed=90 * 86400.0, events=180 * 86400.0)
