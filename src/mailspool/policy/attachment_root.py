"""Version-0 path attachments: read only from beneath ``MAILSPOOL_ATTACHMENT_ROOT``.

The article's files list attachments as paths on the machine that sends, and anyone
who may write the store writes those paths: ``/proc/self/environ`` would mail the
worker's credentials away. So a path is read only when the root is set, and then only
a regular file whose real path (links resolved) lies inside the root. The file is then
opened segment by segment beneath the root with no link followed
(``_files.open_beneath``), so a link swapped in after the check is refused, not
followed; files of ``/proc``, ``/sys`` and ``/dev`` are refused even under a root that
contains them. A refusal is an
``InvalidMessage`` naming the attachment and the setting: that e-mail fails for good,
nothing of the file is read, and the rest of the batch goes on.
"""

from __future__ import annotations

import functools
import mimetypes
import os
from pathlib import Path, PurePosixPath

from mailspool._files import open_beneath, read_regular
from mailspool.errors import InvalidMessage, KeyNotFound, ObjectRefused
from mailspool.message import Attachment

__all__ = ["ROOT_SETTING", "PathAttachments"]

ROOT_SETTING = "MAILSPOOL_ATTACHMENT_ROOT"
_PSEUDO_FILE_SYSTEMS = ("/proc", "/sys", "/dev")


class PathAttachments:
    """Reads path attachments from beneath ``root``; with no root, refuses every one."""

    def __init__(
        self,
        root: str | os.PathLike[str] | None,
        *,
        max_bytes: int,
        size_setting: str = "MAILSPOOL_MAX_ATTACHMENT_BYTES",
    ) -> None:
        self.root = os.path.realpath(root) if root else None
        self.max_bytes = max_bytes
        self.size_setting = size_setting

    def read(self, path: str) -> Attachment:
        """The file at ``path`` as an attachment; ``InvalidMessage`` if refused."""
        parts = self.resolve(path)
        assert self.root is not None  # resolve refused otherwise
        try:
            fd = open_beneath(self.root, parts, path)
            try:
                _refuse_pseudo_file(fd, path)
                content = read_regular(fd, self.max_bytes, path, self.size_setting)
            finally:
                os.close(fd)
        except KeyNotFound:
            raise self._refused(path, "no such file") from None
        except ObjectRefused as err:
            raise self._refused(path, str(err).removeprefix(f"{path}: ")) from None
        except OSError as err:
            raise self._refused(path, f"cannot open it: {err.strerror or err}") from None
        name = PurePosixPath(path).name
        guessed = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return Attachment(filename=name, content=content, content_type=guessed)

    def resolve(self, path: str) -> list[str]:
        """The segments of ``path``'s real path below the root; refused if it has
        ``..``, a NUL, or leads outside the root. Nothing is opened."""
        if self.root is None:
            raise InvalidMessage(
                f"attachment {path!r} refused: a path attachment is read only from beneath "
                f"{ROOT_SETTING}, which is not set; nothing was read",
                field="attachments",
            )
        if "\0" in path or ".." in PurePosixPath(path).parts:
            raise self._refused(path, "a '..' segment or NUL in the path")
        candidate = path if os.path.isabs(path) else os.path.join(self.root, path)
        real = Path(os.path.realpath(candidate))
        if real == Path(self.root) or not real.is_relative_to(self.root):
            raise self._refused(path, f"its real path {str(real)!r} is outside the root")
        return list(real.relative_to(self.root).parts)

    def _refused(self, path: str, why: str) -> InvalidMessage:
        return InvalidMessage(
            f"attachment {path!r} refused: {why} ({ROOT_SETTING}={self.root}); nothing was read",
            field="attachments",
        )


def _refuse_pseudo_file(fd: int, path: str) -> None:
    if os.fstat(fd).st_dev in _pseudo_devices():
        raise ObjectRefused(f"{path}: a file of /proc, /sys or /dev")


@functools.cache
def _pseudo_devices() -> frozenset[int]:
    """The devices of /proc, /sys and /dev where each is a file system of its own."""
    devices = set()
    for folder in _PSEUDO_FILE_SYSTEMS:
        try:
            devices.add(os.stat(folder).st_dev)
        except OSError:
            continue
    devices.discard(os.stat("/").st_dev)
    return frozenset(devices)
