"""What a name inside a store key may be: batch ids, continuation ids, blob digests.

Every key is drawn by ``layout`` from such names, and many of them come from content
someone else wrote (a file name in ``queue/``, an S3 event, a failed record, a blob
reference), so each is checked where it becomes a key: a name that could leave its
folder (``/``, ``\\``, ``..``), end a C string (NUL) or forge a log line (control
characters, Unicode line separators) is refused with ``UnsafeKey``.
"""

from __future__ import annotations

import re

from mailspool.errors import UnsafeKey

__all__ = ["check_digest", "check_name", "is_safe_name"]

# C0 and C1 controls, DEL, the Unicode line and paragraph separators, both slashes.
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029/\\]|\.\.")
_DIGEST = re.compile(r"[0-9a-f]{64}")
_LONGEST = 200  # a file name must fit in 255 bytes with the store's suffixes


def _problem(name: str) -> str | None:
    if not name:
        return "it is empty"
    if len(name) > _LONGEST:
        return f"it is longer than {_LONGEST} characters"
    if name.startswith("."):
        return "it starts with '.' (such names are the store's own)"
    found = _FORBIDDEN.search(name)
    if found is not None:
        return f"it contains {found.group()!r} ('/', '\\', '..', NUL and control characters are refused)"
    return None


def is_safe_name(name: str) -> bool:
    """True if ``name`` may be one segment of a key."""
    return _problem(name) is None


def check_name(name: str, what: str = "batch id") -> str:
    """``name`` if it may be one segment of a key; else ``UnsafeKey`` naming it."""
    problem = _problem(name)
    if problem is not None:
        raise UnsafeKey(f"refused {what} {name!r}: {problem}")
    return name


def check_digest(digest: str) -> str:
    """A blob's SHA-256: exactly 64 lowercase hex digits."""
    if not _DIGEST.fullmatch(digest):
        raise UnsafeKey(f"refused blob digest {digest!r}: it must be 64 lowercase hex digits")
    return digest
