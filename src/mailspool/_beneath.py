"""Open and read a file beneath a folder without following a symbolic link.

The folder is opened once, then each segment of the path is opened relative to the
one before (``openat``) with ``O_NOFOLLOW``: a symbolic link anywhere on the way, even
one swapped in a moment after a check, is refused by the kernel instead of followed.
The file is opened ``O_NONBLOCK`` (a FIFO cannot hang the reader) and must be a
regular file; its size is known from ``fstat`` before a byte is read, and the read
stops one byte past the limit whatever the file claims (``/proc`` files claim 0).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence

from mailspool.errors import KeyNotFound, ObjectRefused, ObjectTooLarge

__all__ = ["open_beneath", "read_beneath", "read_regular"]

_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CHUNK = 1 << 20


def open_beneath(root: str | os.PathLike[str], parts: Sequence[str], what: str) -> int:
    """A read-only descriptor of ``root/parts...``; ``ObjectRefused`` if any segment is
    a symbolic link, ``KeyNotFound`` if something is missing. ``what`` names it in errors."""
    if not parts or any(p in ("", ".", "..") or "/" in p for p in parts):
        raise ObjectRefused(f"{what}: not a plain path beneath {os.fspath(root)}")
    folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            inner = _open_at(part, _FOLDER_FLAGS, folder, what)
            os.close(folder)
            folder = inner
        return _open_at(parts[-1], _FILE_FLAGS, folder, what)
    finally:
        os.close(folder)


def _open_at(name: str, flags: int, folder: int, what: str) -> int:
    try:
        return os.open(name, flags, dir_fd=folder)
    except OSError as err:
        # O_NOFOLLOW answers ELOOP for a link (EMLINK on the BSDs); with O_DIRECTORY,
        # Linux answers ENOTDIR, as it does for a plain file: look at what is there.
        if err.errno in (errno.ELOOP, errno.EMLINK) or _is_link(name, folder):
            raise ObjectRefused(f"{what}: a symbolic link is on the way; not followed") from None
        if err.errno in (errno.ENOENT, errno.ENOTDIR):
            raise KeyNotFound(what) from None
        raise


def _is_link(name: str, folder: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode)
    except OSError:
        return False


def read_regular(fd: int, limit: int, what: str, setting: str) -> bytes:
    """Every byte of the open regular file ``fd``, if at most ``limit``; else refused
    (``ObjectTooLarge`` naming ``setting``) before anything is read."""
    info = os.fstat(fd)
    if stat.S_ISDIR(info.st_mode):
        raise KeyNotFound(what)  # a folder holds objects; it is not one
    if not stat.S_ISREG(info.st_mode):
        raise ObjectRefused(f"{what}: not a regular file (a device, FIFO, socket or folder)")
    if info.st_size > limit:
        raise ObjectTooLarge(what, info.st_size, limit, setting)
    chunks: list[bytes] = []
    total = 0
    while total <= limit:
        chunk = os.read(fd, min(_CHUNK, limit + 1 - total))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
    raise ObjectTooLarge(what, total, limit, setting)  # it grew while being read


def read_beneath(
    root: str | os.PathLike[str], parts: Sequence[str], limit: int, what: str, setting: str
) -> bytes:
    """``open_beneath`` then ``read_regular``; the descriptor is always closed."""
    fd = open_beneath(root, parts, what)
    try:
        return read_regular(fd, limit, what, setting)
    finally:
        os.close(fd)
