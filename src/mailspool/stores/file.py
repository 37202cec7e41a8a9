"""The file store: a spool folder on the local disk (``file://DIR``), the default store.

A key is a file under the root (``queue/x.json`` is ``ROOT/queue/x.json``). Files are
0600 and folders 0700 whatever the umask: e-mails are personal data. How each promise
of ``Store`` is kept:

- ``put``: the data goes to a temp file (``.tmp-<random>``) in the key's folder, is
  fsynced, renamed over the key, and the folder is fsynced. Readers see the old object
  or the new one, never a part; a crash leaves at most a temp file, which ``list``
  skips.
- ``put_new``: the finished temp file is hard-linked to the key. The link fails if the
  key exists, so exactly one writer wins, and its object is whole from the first moment.
- ``move``: a rename: atomic, and it replaces an object at the destination (the
  store's contract, see ``Store.move``).
- ``append``: one line per record, added by a single ``O_APPEND`` write and fsynced, so
  appends from many threads and processes never interleave. A line torn by a power
  loss or a full disk is ignored by ``read_log`` while it is last; the next append
  starts a fresh line, so its record stays whole and the torn fragment reads back as a
  line of its own (the ledger skips lines it cannot parse).
- ``claim``: an exclusive ``flock`` on ``ROOT/.leases/<name>``, kept for as long as the
  lease's file descriptor stays open. The kernel drops a process's locks when it
  ends, however it ends (even SIGKILL), so a dead worker's claim is free at once: no
  stale lock to clean up, no clock to trust, no expiry to wait for. The ttl is only
  written into the lease file for people to read (``claims()``, ``mailspool status``).
  The limits: flock coordinates the processes of one machine on a local disk (a spool
  shared between hosts, over NFS and the like, needs the S3 store), and a child forked
  while a claim is held shares that claim until it exits too.

Reads never follow a symbolic link (``mailspool._files.read_beneath``): a link or any other
special file placed in the spool is listed, so the worker can quarantine it, but
reading it raises ``ObjectRefused``; ``move`` moves the link itself, not its target.
Writes do not follow one either: every file the store writes (leases, ledgers, batches,
temp files) is opened with ``O_NOFOLLOW``, and no folder under the root may be a link,
so a writer who can reach the store's folder cannot make a claim or a ledger write land
in another file.

Names starting with ``.`` belong to the store (temp files, ``.leases``): no segment of
a key may start with a dot, and ``list`` skips them. POSIX only (flock, hard links).
"""

from __future__ import annotations

import builtins
import errno
import hashlib
import os
import stat
import sys
import threading
import time
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote

from mailspool._files import (
    FILE_MODE,
    NO_FOLLOW,
    fsync_folder,
    make_folder,
    open_beneath,
    read_beneath,
    remove,
    write_atomically,
    write_temp,
)
from mailspool.errors import ConfigurationError, KeyNotFound, LeaseLost, ObjectRefused, StoreError
from mailspool.stores import check_record
from mailspool.stores.base import CHUNK_SIZE, Lease, ObjectInfo, Store, check_key, check_prefix
from mailspool.stores.file_leases import (
    LeaseFile,
    acquire,
    inspect_lease,
    lease_file,
    record_lease,
)

__all__ = ["FileStore"]

_LEASES = ".leases"
_LONGEST_LEASE_FILE = 200

_Entry = tuple[str, bool, os.stat_result]


def _root_from_url(url: str) -> str:
    """The folder of ``file:///abs``, ``file://rel`` or ``file:rel`` (taken literally)."""
    scheme, colon, rest = url.partition(":")
    if scheme.lower() != "file" or not colon:
        raise ConfigurationError(f"not a file store URL (file://DIR): {url!r}")
    path = rest.removeprefix("//")
    if not path:
        raise ConfigurationError(f"file store URL {url!r} names no folder")
    return path


class FileStore(Store):
    """A store in a local folder; see the module docstring for how each promise is kept."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(os.path.abspath(os.path.expanduser(root)))
        self.url = f"file://{self.root}"
        self._held: set[LeaseFile] = set()
        self._held_lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str) -> FileStore:
        """``file:///abs/path``; ``file://rel`` and ``file:rel`` are relative to the
        current directory; ``~`` is expanded."""
        return cls(_root_from_url(url))

    # -- objects -------------------------------------------------------------------

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        with self._failure("write", key):
            make_folder(path.parent, self.root)
            write_atomically(path, data)
            fsync_folder(path.parent)

    def put_new(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        with self._failure("write", key):
            make_folder(path.parent, self.root)
            temp = write_temp(path.parent, data)
            try:
                os.link(temp, path)
            except FileExistsError:
                return False
            finally:
                remove(temp)
            fsync_folder(path.parent)
            return True

    def get(self, key: str) -> bytes:
        return self.get_at_most(key, sys.maxsize)

    def get_at_most(self, key: str, limit: int, setting: str = "the limit") -> bytes:
        """Read through no symbolic link, only a regular file, its size checked first."""
        check_key(key)
        with self._failure("read", key):
            try:
                return read_beneath(self.root, key.split("/"), limit, key, setting)
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as err:
                raise KeyNotFound(key) from err

    def read_chunks(self, key: str, chunk_size: int = CHUNK_SIZE) -> Generator[bytes, None, None]:
        """Read through no symbolic link, only a regular file, one chunk at a time."""
        check_key(key)
        with self._failure("read", key):
            try:
                fd = open_beneath(self.root, key.split("/"), key)
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as err:
                raise KeyNotFound(key) from err
        try:
            with self._failure("read", key):
                mode = os.fstat(fd).st_mode
                if stat.S_ISDIR(mode):
                    raise KeyNotFound(key)
                if not stat.S_ISREG(mode):
                    raise ObjectRefused(f"{key}: not a regular file (a device, FIFO or socket)")
                while chunk := os.read(fd, chunk_size):
                    yield chunk
        finally:
            os.close(fd)

    def exists(self, key: str) -> bool:
        return _is_file(self._path(key))

    def delete(self, key: str) -> None:
        path = self._path(key)
        with self._failure("delete", key):
            if remove(path):
                fsync_folder(path.parent)

    def move(self, source: str, destination: str) -> bool:
        """Rename: atomic, replacing any object at the destination. False if the source
        is gone (another worker moved it first) or is not a file."""
        src, dst = self._path(source), self._path(destination)
        if source == destination:
            return src.is_file()
        with self._failure("move", source):
            if not _is_file(src):
                return False
            make_folder(dst.parent, self.root)
            try:
                os.rename(src, dst)
            except FileNotFoundError:
                return False
            # Two names of one file (a link left by a crash) stay as they were after
            # rename(): remove the source's; False if another mover removed it first.
            if _same_file(src, dst) and not remove(src):
                return False
            fsync_folder(dst.parent)
            if src.parent != dst.parent:
                fsync_folder(src.parent)
            return True

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Objects under ``prefix`` (which may end inside a name) in ascending key order,
        reading only the folders the prefix reaches. Files deleted meanwhile are left
        out; temp files and lease files never appear."""
        check_prefix(prefix)
        folder_key, _, start = prefix.rpartition("/")
        folder = self.root / folder_key if folder_key else self.root
        return self._walk(folder, f"{folder_key}/" if folder_key else "", start)

    # -- record logs -----------------------------------------------------------------

    def append(self, key: str, record: bytes) -> None:
        check_record(record)
        path = self._path(key)
        with self._failure("append to", key):
            make_folder(path.parent, self.root)
            flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | NO_FOLLOW
            fd = os.open(path, flags, FILE_MODE)
            try:
                _append_line(fd, record, path.parent)
            finally:
                os.close(fd)

    def read_log(self, key: str) -> builtins.list[bytes]:
        """The records in order; a torn last line (no newline: a crash) is left out."""
        try:
            lines = self.get(key).split(b"\n")
        except KeyNotFound:
            return []
        lines.pop()
        return [line for line in lines if line]

    def delete_log(self, key: str) -> None:
        self.delete(key)

    # -- claims ----------------------------------------------------------------------

    def claim(self, name: str, owner: str, ttl: float) -> Lease | None:
        """Lock the lease file of ``name``; None if another holder has it locked. The
        claim is exclusive between threads too: each claim opens its own descriptor."""
        path = self._lease_path(name)
        with self._failure("claim", name):
            make_folder(path.parent, self.root)
            handle = acquire(path)
            if handle is None:
                return None
            lease = Lease(name, owner, time.time() + ttl, handle)
            try:
                os.fchmod(handle.fd, FILE_MODE)
                record_lease(handle, lease)
            except BaseException:
                handle.release()
                raise
        with self._held_lock:
            self._held.add(handle)
        return lease

    def renew(self, lease: Lease, ttl: float) -> Lease:
        """Write the new expiry; ``LeaseLost`` if released, or if the lease file was
        removed or replaced behind the holder's back."""
        handle = lease_file(lease)
        with self._failure("renew", lease.name), handle.lock:
            if not handle.held or not handle.is_current():
                raise LeaseLost(f"claim {lease.name!r} in {self.root} is no longer held")
            renewed = replace(lease, expires=time.time() + ttl)
            record_lease(handle, renewed)
        return renewed

    def release(self, lease: Lease) -> None:
        handle = lease_file(lease)
        with self._held_lock:
            self._held.discard(handle)
        with self._failure("release", lease.name):
            handle.release()

    def claims(self) -> builtins.list[Lease]:
        """The claims held right now by any process of this machine, by name, with the
        owner and expiry their holders wrote (``token`` is None).

        "Held" is tested with a non-blocking shared lock, taken and dropped at once; a
        claim attempted during that instant may see the name as held and return None.
        """
        folder = self.root / _LEASES
        with self._failure("list claims in", _LEASES):
            try:
                names = os.listdir(folder)
            except FileNotFoundError:
                return []
            found = [inspect_lease(folder / name) for name in names]
        return sorted((lease for lease in found if lease), key=lambda lease: lease.name)

    # -- life cycle ------------------------------------------------------------------

    def close(self) -> None:
        """Release every claim this store still holds."""
        with self._held_lock:
            held, self._held = self._held, set()
        for handle in held:
            handle.release()

    # -- helpers ---------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        check_key(key)
        return self.root / key

    def _lease_path(self, name: str) -> Path:
        check_key(name, "claim name")
        escaped = quote(name, safe="")
        if len(escaped) > _LONGEST_LEASE_FILE:
            escaped = "sha256-" + hashlib.sha256(name.encode()).hexdigest()
        return self.root / _LEASES / escaped

    def _walk(self, folder: Path, base: str, start: str) -> Iterator[ObjectInfo]:
        for name, is_folder, info in self._entries(folder, start):
            if is_folder:
                yield from self._walk(folder / name, f"{base}{name}/", "")
            else:
                yield ObjectInfo(base + name, info.st_size, info.st_mtime)

    def _entries(self, folder: Path, start: str) -> builtins.list[_Entry]:
        """The files and folders in ``folder`` whose names start with ``start``, in the
        order of the keys they hold (a folder sorts as its name plus ``/``)."""
        try:
            with os.scandir(folder) as scan:
                entries = [_entry(item) for item in scan if _visible(item.name, start)]
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as err:
            raise StoreError(f"cannot list {folder}: {err.strerror or err}") from err
        found = [entry for entry in entries if entry is not None]
        return sorted(found, key=lambda entry: entry[0] + "/" if entry[1] else entry[0])

    @contextmanager
    def _failure(self, action: str, key: str) -> Iterator[None]:
        """OS errors out as ``StoreError`` naming the key and the store."""
        try:
            yield
        except OSError as err:
            if err.errno == errno.ELOOP:  # refused for good: waiting does not heal it
                reason = "it is a symbolic link, which the store never follows"
                raise ObjectRefused(f"cannot {action} {key!r} in {self.root}: {reason}") from err
            reason = err.strerror or str(err)
            raise StoreError(f"cannot {action} {key!r} in {self.root}: {reason}") from err


def _append_line(fd: int, record: bytes, folder: Path) -> None:
    """One write, then fsync. Starts a fresh line if the log ends in a torn one."""
    info = os.fstat(fd)
    if stat.S_IMODE(info.st_mode) != FILE_MODE:
        os.fchmod(fd, FILE_MODE)
    line = record + b"\n"
    if info.st_size and os.pread(fd, 1, info.st_size - 1) != b"\n":
        line = b"\n" + line
    written = os.write(fd, line)
    if written != len(line):
        raise StoreError(f"short write to the log in {folder} (disk full?)")
    os.fsync(fd)
    if info.st_size == 0:
        fsync_folder(folder)


def _is_file(path: Path) -> bool:
    """Anything but a folder: a link or a special file is an object that moves as itself
    (the worker moves one to ``quarantine/`` unread)."""
    try:
        return not stat.S_ISDIR(os.lstat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False


def _same_file(first: Path, second: Path) -> bool:
    try:
        return os.path.samefile(first, second)
    except FileNotFoundError:
        return False


def _entry(item: os.DirEntry[str]) -> _Entry | None:
    try:
        info = item.stat(follow_symlinks=False)
    except FileNotFoundError:
        return None
    if stat.S_ISDIR(info.st_mode):
        return (item.name, True, info)
    return (item.name, False, info)  # a link or special file too: the worker refuses it


def _visible(name: str, start: str) -> bool:
    return not name.startswith(".") and name.startswith(start)
