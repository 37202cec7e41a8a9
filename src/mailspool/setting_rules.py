"""What each setting accepts, whatever its source: one ``Rule`` per kind of value (text,
a whole number in a range, a finite number of seconds, one of some words, names...),
applied by ``mailspool.config`` to the environment's text and to a framework's or a
caller's Python values alike. A refusal is a ``SettingError`` naming the setting as its
source spells it and the rule."""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mailspool.errors import ConfigurationError
from mailspool.retention import STATES_RULE, parse_retention


class SettingError(ConfigurationError):
    """A setting that is unknown or whose value its rule refuses. ``setting`` is the name
    as its source spells it (``max_rate``, ``MAILSPOOL_MAX_RATE``, ``MAILSPOOL['MAX_RATE']``);
    ``hint`` says what would be right (the rule, or the closest known name).
    ``problems``: every problem found in the same load, this one first, for a check that
    reports them all at once (Django's ``manage.py check``)."""

    def __init__(self, message: str, *, setting: str, hint: str) -> None:
        super().__init__(message)
        self.setting = setting
        self.hint = hint
        self.problems: tuple[SettingError, ...] = (self,)


@dataclass(frozen=True, slots=True)
class Rule:
    """What a setting accepts. ``words`` say it, in errors and in the docs' table;
    ``convert`` turns a value into the setting's type (text from the environment or a
    flag, a Python value from an argument or a framework dict) and raises ``ValueError``
    or ``TypeError`` for a value it refuses. ``secret``: an error does not show the value."""

    words: str
    convert: Callable[[Any], Any]
    secret: bool = False

    def __call__(self, label: str, value: Any) -> Any:
        """The value converted, or ``SettingError`` naming ``label`` and the rule."""
        try:
            return self.convert(value)
        except (TypeError, ValueError, OverflowError):
            shown = f"a value of type {type(value).__name__}" if self.secret else repr(value)
            raise SettingError(
                f"{label} must be {self.words}, got {shown}",
                setting=label,
                hint=f"{label} accepts {self.words} (see docs/configuration.md)",
            ) from None


def _text_value(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(value)
    return value


def _non_empty(value: Any) -> str:
    if not _text_value(value).strip():
        raise ValueError(value)
    return str(value)


def _text_rule(*, secret: bool = False) -> Rule:
    return Rule("non-empty text", _non_empty, secret)


def _any_text_rule(*, secret: bool = False) -> Rule:
    return Rule("text", _text_value, secret)


def _folder(value: Any) -> str:
    """A path, as text or a ``Path`` (Django settings build them: ``BASE_DIR / "x"``)."""
    return _non_empty(os.fspath(value) if isinstance(value, os.PathLike) else value)


def _whole(value: Any) -> int:
    """An int, or its digits as text; never a bool or a float (4.5 is not a count)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(value)
    return int(value)


def _integer(low: int, *, high: int | None = None) -> Rule:
    def convert(value: Any) -> int:
        number = _whole(value)
        if number < low or (high is not None and number > high):
            raise ValueError(number)
        return number

    words = f"a whole number >= {low}" + (f" and <= {high}" if high is not None else "")
    return Rule(words, convert)


def _real(value: Any) -> float:
    """A finite number, or its text: never a bool, NaN or an infinity."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real | str):
        raise TypeError(value)
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(value)
    return number


def _number(
    low: float, *, above: bool, high: float | None = None, unit: str = "", optional: bool = False
) -> Rule:
    """A finite number more than ``low`` (``above``) or at least ``low``, at most ``high``;
    ``unit`` (``seconds``) words the rule; ``optional``: ``None`` or `'unlimited'` too."""
    bound = f"> {low:g}" if above else f">= {low:g}"
    words = f"a finite number{f' of {unit}' if unit else ''} {bound}"
    if high is not None:
        words += f" and <= {high:g}"
    if optional:
        words += " (or 'unlimited')"

    def convert(value: Any) -> float | None:
        if optional and (value is None or str(value).strip().lower() in _UNLIMITED):
            return None
        number = _real(value)
        if number < low or (above and number == low) or (high is not None and number > high):
            raise ValueError(value)
        return number

    return Rule(words, convert)


_UNLIMITED = ("", "none", "unlimited")


def _names_of(value: Any) -> frozenset[str]:
    """Comma-separated text, or a list (or set) of texts."""
    parts = value.split(",") if isinstance(value, str) else value
    if not isinstance(parts, list | tuple | set | frozenset):
        raise TypeError(value)
    return frozenset(_text_value(part).strip() for part in parts if _text_value(part).strip())


def _one_of(*words: str) -> Rule:
    quoted = [repr(word) for word in words]
    allowed = ", ".join(quoted[:-1]) + " or " + quoted[-1]

    def convert(value: Any) -> str:
        word = _text_value(value).strip().lower()
        if word not in words:
            raise ValueError(value)
        return word

    return Rule(allowed, convert)


# The rules the table's rows name (lower case: the parsers' names before rules, which
# rows added elsewhere may still use).
_text = _text_rule()
_any_text = _any_text_rule()
_SECRET = _text_rule(secret=True)
_ANY_SECRET = _any_text_rule(secret=True)
_positive_int = _integer(1)
_non_negative_int = _integer(0)
#: at most 100: the backoff doubles per attempt, and 2 ** 1024 is no float
_ATTEMPTS = _integer(1, high=100)
_seconds = _number(0, above=False, unit="seconds")
_positive_seconds = _number(0, above=True, unit="seconds")
_positive_number = _number(0, above=True)
_optional_rate = _number(0, above=True, optional=True)
#: a share of a provider's limit kept back: at most 0.9, so the worker always sends
_SHARE = _number(0, above=False, high=0.9)
#: at most ten years: a date that far back is still a date
_DAYS = _number(0, above=True, high=3650, unit="days")
_RETENTION = Rule(
    f"comma-separated STATE=AGE pairs, STATE one of {STATES_RULE}, AGE 1h to 3650d "
    "in h, d or w (e.g. finished=30d,failed=90d)",
    parse_retention,
)
_names = Rule("names, comma-separated (or a list)", _names_of)


def _key_specs(value: Any) -> tuple[str, ...]:
    """Key-encryption keys in order (the first seals): each a 44-character URL-safe
    base64 key, ``file:PATH`` or ``kms:ARN``; the keys themselves are checked when a
    store opens with them (``spool.keyring``), a file being read only then."""
    parts = value.split(",") if isinstance(value, str) else value
    if not isinstance(parts, list | tuple):
        raise TypeError(value)
    specs = tuple(_text_value(part).strip() for part in parts if _text_value(part).strip())
    for spec in specs:
        if spec.startswith(("file:", "kms:")) and len(spec.partition(":")[2]) > 0:
            continue
        if len(spec) != 44 or not spec.replace("-", "").replace("_", "").rstrip("=").isalnum():
            raise ValueError("a key")
    return specs


#: never shown in an error: a local key is the secret itself
_KEYS = Rule(
    "keys, comma-separated: 32 bytes in URL-safe base64, file:PATH or kms:KEY-ARN",
    _key_specs,
    secret=True,
)
_FOLDER = Rule("a folder's path (text or a Path)", _folder)

#: ``--poll-interval`` of the worker commands: no setting, but the same kind of rule
POLL_INTERVAL = _positive_seconds
