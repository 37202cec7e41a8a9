"""Reading the tally's log (``spool.tally``): each line checked before it counts. A
line that is not a record (not JSON, not an object, a field of the wrong type or out of
range) is skipped with its reason logged once per key and reason, so one odd writer
never makes ``status`` fail; a record written twice counts once.
"""

from __future__ import annotations

import logging

import orjson

from mailspool.errors import MailspoolError
from mailspool.stores.base import Store

__all__ = ["segment_records"]

log = logging.getLogger("mailspool.tally")

_odd_reported: set[tuple[str, str]] = set()


def segment_records(store: Store, key: str) -> list[dict[str, object]]:
    """A segment's records, each batch's finish (or forgetting) once: a record written
    again because its first write's answer was lost (``retry_write``) counts once. A
    line that is not a record is skipped, its reason logged once per key and reason;
    a log that cannot be read (a link, a special file) is skipped the same way."""
    records = []
    seen: set[tuple[str, int]] = set()
    try:
        lines = store.read_log(key)
    except MailspoolError as err:
        _odd(store, key, f"cannot read it: {err}")
        return []
    for line in lines:
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # a torn write from a crash
        problem = _record_problem(record)
        if problem is not None:
            _odd(store, key, problem)
            continue
        mark = (record["b"], record["done"])
        if mark not in seen:
            seen.add(mark)
            records.append(record)
    return records


def _record_problem(record: object) -> str | None:
    """Why ``record`` is not a tally record, or None."""
    if not isinstance(record, dict):
        return f"a record is an object, not {type(record).__name__}"
    if not isinstance(record.get("b"), str) or not record["b"]:
        return "a record names its batch in 'b' (a string)"
    if record.get("done") not in (-1, 0, 1) or isinstance(record.get("done"), bool):
        return "'done' is -1, 0 or 1"
    for name in ("sent", "failed", "refused", "t"):
        value = record.get(name, 0)
        if not isinstance(value, int) or isinstance(value, bool) or abs(value) > 10**12:
            return f"{name!r} is an integer"
    return None


def _odd(store: Store, key: str, problem: str) -> None:
    if (store.url + key, problem) in _odd_reported:
        return
    _odd_reported.add((store.url + key, problem))
    log.warning("skipped a tally record in %s of %s: %s", key, store.url, problem)
