"""Private, durable files on the local disk: the file store's and the file transport's.

Files are 0600 and folders 0700 whatever the umask: e-mails are personal data. A file is
written whole under a temporary name (``.tmp-<random>``) and fsynced before it is renamed
or linked into place, so a reader sees no file, the old one or the whole new one; fsyncing
the folder then makes the rename survive a power loss.

No file is opened through a symbolic link (``NO_FOLLOW``), and ``make_folder`` refuses a
folder below its ``inside`` that is one: whoever can write in the folder cannot turn a
write into a write somewhere else.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from pathlib import Path

__all__ = [
    "FILE_MODE",
    "FOLDER_MODE",
    "NO_FOLLOW",
    "TEMP_PREFIX",
    "fsync_folder",
    "make_folder",
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
