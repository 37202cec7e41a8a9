"""The file store's claims: an ``flock`` on ``.leases/<name>``, which the kernel releases
with the process, so a claim dies with its holder. The lease file holds the claim's name,
owner and expiry as JSON, for people to read; releasing unlinks it while still locked."""

from __future__ import annotations

import fcntl
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from mailspool._files import FILE_MODE, NO_FOLLOW, remove
from mailspool.errors import ConfigurationError
from mailspool.stores.base import Lease

__all__ = ["LeaseFile", "acquire", "inspect_lease", "lease_file", "record_lease"]

_CLAIM_ATTEMPTS = 16
_LEASE_BYTES = 4096


@dataclass(eq=False)
class LeaseFile:
    """The open, locked lease file behind a ``Lease``: the claim lasts while it is open."""

    fd: int
    path: Path
    pid: int = field(default_factory=os.getpid)
    held: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def is_current(self) -> bool:
        """True while the locked file is still the one at the path."""
        try:
            on_disk = os.stat(self.path)
        except FileNotFoundError:
            return False
        mine = os.fstat(self.fd)
        return (mine.st_dev, mine.st_ino) == (on_disk.st_dev, on_disk.st_ino)

    def release(self) -> None:
        """Unlink the file while still locked, then close: whoever opened it meanwhile
        sees it is no longer current and starts over. In a forked child, only close."""
        with self.lock:
            if not self.held:
                return
            self.held = False
            try:
                if self.pid == os.getpid() and self.is_current():
                    remove(self.path)
            finally:
                os.close(self.fd)


def acquire(path: Path) -> LeaseFile | None:
    """Lock the file at ``path``; None if held. Retries while the file it locked was
    released (unlinked) between its open and its lock."""
    for _ in range(_CLAIM_ATTEMPTS):
        handle = _lock(path)
        if handle is None:
            return None
        try:
            if handle.is_current():
                return handle
        except BaseException:
            os.close(handle.fd)
            raise
        os.close(handle.fd)
    return None


def _lock(path: Path) -> LeaseFile | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | NO_FOLLOW, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return LeaseFile(fd, path)


def lease_file(lease: Lease) -> LeaseFile:
    if not isinstance(lease.token, LeaseFile):
        raise ConfigurationError(f"claim {lease.name!r} was not made by a file store")
    return lease.token


def record_lease(handle: LeaseFile, lease: Lease) -> None:
    """Write name, owner and expiry into the locked file, for people to read. Written
    before truncating, so the file always starts with a whole JSON object."""
    payload = {"name": lease.name, "owner": lease.owner, "expires": lease.expires}
    data = json.dumps(payload).encode()
    os.pwrite(handle.fd, data, 0)
    os.ftruncate(handle.fd, len(data))


def inspect_lease(path: Path) -> Lease | None:
    """The lease in ``path`` if some process holds it locked, else None."""
    try:
        fd = os.open(path, os.O_RDONLY | NO_FOLLOW)
    except OSError:
        return None  # gone, or not a lease file the store wrote (a symbolic link)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_lease(fd, path)
    else:
        return None
    finally:
        os.close(fd)


def _read_lease(fd: int, path: Path) -> Lease:
    """The lease a holder wrote; its bare name if the file cannot be read yet."""
    text = os.pread(fd, _LEASE_BYTES, 0).decode(errors="replace")
    try:
        payload: Any = json.JSONDecoder().raw_decode(text)[0]
        return Lease(str(payload["name"]), str(payload["owner"]), float(payload["expires"]))
    except (ValueError, LookupError, TypeError):
        return Lease(unquote(path.name), "", 0.0)
