"""Files on the local disk, below a folder: the file store's and the file transport's,
written private and durable, and files read beneath a folder with no link followed
(the file store's objects, version-0 path attachments).

Files are 0600 and folders 0700 whatever the umask: e-mails are personal data. A file is
written whole under a temporary name (``.tmp-<random>``) and fsynced before it is renamed
or linked into place, so a reader sees no file, the old one or the whole new one; fsyncing
the folder then makes the rename survive a power loss.

No file is opened through a symbolic link (``NO_FOLLOW``), and ``make_folder`` refuses a
folder below its ``inside`` that is one: whoever can write in the folder cannot turn a
write into a write somewhere else.

A file is read beneath a folder without following a symbolic link (``read_beneath``):
the folder is opened once, then each segment of the path is opened relative to the one
before (``openat``) with ``O_NOFOLLOW``, so a link anywhere on the way, even one swapped
in a moment after a check, is refused by the kernel instead of followed. The file is
opened ``O_NONBLOCK`` (a FIFO cannot hang the reader) and must be a regular file; its
size is known from ``fstat`` before a byte is read, and the read stops one byte past the
limit whatever the file claims (``/proc`` files claim 0).
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Sequence
from pathlib import Path

from mailspool.errors import KeyNotFound, ObjectRefused, ObjectTooLarge

__all__ = [
    "FILE_MODE",
    "FOLDER_MODE",
    "NO_FOLLOW",
    "TEMP_PREFIX",
    "fsync_folder",
    "make_folder",
    "open_beneath",
    "read_beneath",
    "read_regular",
    "remove",
    "write_atomically",
    "write_temp",
]

FILE_MODE = 0o600
FOLDER_MODE = 0o700
TEMP_PREFIX = ".tmp-"  # a name no key or message file starts with
NO_FOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC  # open() fails (ELOOP) on a symbolic link


def make_folder(folder: Path, inside: Path | None = None) -> None:
    """The folder and its missing parents, each created 0700 and made durable. A folder
    below ``inside`` that is not a real folder (a symbolic link) raises OSError: writes
    never leave ``inside`` (which may itself be a link: that is the operator's choice).
    Every level is looked at on each call, from ``inside`` down, as strings: this runs
    for every ledger append."""
    path = os.fspath(folder)
    top = "" if inside is None else os.fspath(inside)
    prefix = top.rstrip(os.sep) + os.sep
    if not top or path == top or not path.startswith(prefix):  # not below ``inside``
        _make_level(path, follow=True)
        return
    _make_level(top, follow=True)
    current = top
    for name in path[len(prefix) :].split(os.sep):
        if name:
            current = os.path.join(current, name)
            _make_level(current, follow=False)


def _make_level(path: str, *, follow: bool) -> None:
    """One folder: there already (a folder, else NotADirectoryError), or created 0700
    and made durable; with ``follow``, its missing parents too, links followed."""
    try:
        info = os.stat(path) if follow else os.lstat(path)
    except FileNotFoundError:
        parent = os.path.dirname(path)
        if follow and parent != path:
            _make_level(parent, follow=True)
        try:
            os.mkdir(path, FOLDER_MODE)
        except FileExistsError:
            return
        os.chmod(path, FOLDER_MODE)
        fsync_folder(Path(parent))
        return
    if not stat.S_ISDIR(info.st_mode):
        raise NotADirectoryError(errno.ENOTDIR, "not a folder (a symbolic link?)", path)


def write_temp(folder: Path, data: bytes) -> Path:
    """A fsynced 0600 temp file in ``folder`` holding ``data``."""
    temp = folder / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NO_FOLLOW, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        remove(temp)
        raise
    finally:
        os.close(fd)
    return temp


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``path`` whole, replacing any file there; fsync its folder afterwards (once
    for several files) to make the rename durable."""
    temp = write_temp(path.parent, data)
    try:
        os.replace(temp, path)
    except BaseException:
        remove(temp)
        raise


def remove(path: Path) -> bool:
    """Unlink; False if there was nothing to unlink."""
    try:
        os.unlink(path)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return False
    return True


def fsync_folder(folder: Path) -> None:
    """Make a rename, link or unlink in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | NO_FOLLOW)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- reading beneath a folder -------------------------------------------------------------

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
