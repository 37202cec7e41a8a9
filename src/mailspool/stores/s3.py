"""The S3 store: ``s3://BUCKET/PREFIX``, every object private and encrypted at rest.

Keys live under ``PREFIX/`` (no prefix: at the bucket's root). What each promise of
``Store`` becomes on S3:

- ``put``: one PUT (S3 writes are atomic), ``ACL=private`` and server-side encryption
  (``AES256``, or ``aws:kms`` with an optional key id). A bucket with ACLs disabled
  (Object Ownership "bucket owner enforced", the default since 2023) refuses any ACL
  but its own; objects there are private to the owner anyway, so the store then writes
  without an ACL and says so once in the log.
- ``put_new``: a conditional PUT, ``If-None-Match: *``; a 412 means someone else won.
- ``list``: S3 lists in UTF-8 byte order, which is Python's ``str`` order.
- ``move``: copy (conditional on the source's ETag), then a delete conditional on the
  same ETag, so that of two concurrent moves of one object exactly one reports True.
- ``append``: S3 cannot append, so a log is a folder: ``KEY/<time_ns>-<random>`` holds
  one record each and ``read_log`` reads the folder in key order. Records appended by
  one store come back in the order appended; records from different hosts are ordered
  by their clocks.
- ``claim``: a lease object ``.leases/NAME`` holding ``{"owner", "expires"}``, created
  with ``If-None-Match: *``; an expired lease is taken over with ``If-Match: <ETag>``,
  so of two workers taking over the same lease only one wins. The lease token is the
  ETag of the version this store wrote; ``renew`` and ``release`` are conditional on
  it. Expiry compares ``time.time()`` on different hosts: keep ``ttl`` much larger
  than the clock skew between them (NTP keeps it well under a second).

The endpoint comes from ``AWS_ENDPOINT_URL`` like every boto3 client, so the same code
talks to a local emulator in tests. One client per store is shared by every thread
(boto3 clients are thread-safe), so a request writes all its batches over one
connection pool. Error messages name the bucket and key; object bodies are never
logged.
"""

from __future__ import annotations

import builtins
import logging
import threading
import time
import uuid
from collections.abc import Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

# botocore comes with the aws extra; open_store names the extra when it is missing
from botocore.exceptions import BotoCoreError, ClientError

from mailspool.errors import ConfigurationError, KeyNotFound, LeaseLost, ObjectTooLarge, StoreError
from mailspool.stores import check_record
from mailspool.stores.base import CHUNK_SIZE, Lease, ObjectInfo, Store, check_key, check_prefix
from mailspool.stores.s3_support import (
    POOL,
    AclRefused,
    Conflict,
    PreconditionFailed,
    client_error,
    lease_body,
    lease_expires,
    lease_owner,
    make_client,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["S3Store"]

log = logging.getLogger(__name__)

LEASES = ".leases/"
SSE_MODES = ("AES256", "aws:kms")
_URL_OPTIONS = frozenset({"sse", "kms_key_id", "region"})
_CONSTRUCTOR_OPTIONS = _URL_OPTIONS | {"bucket", "prefix", "client"}
_CONFLICT_RETRIES = 5  # 409 ConditionalRequestConflict: another conditional write in flight
_DELETE_BATCH = 1000  # the most keys one DeleteObjects request takes
_READ_THREADS = 16


class S3Store(Store):
    """A store in an S3 bucket; see the module docstring for how each promise is kept."""

    #: one PUT per commit ($0.005 per 1000): at 14 e-mails/s, a commit a second costs
    #: $0.36 per million e-mails instead of $5 for one PUT each (docs/aws.md)
    ledger_commit_ms = 1000

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str = "",
        client: S3Client | None = None,
        sse: str = "AES256",
        kms_key_id: str | None = None,
        region: str | None = None,
    ) -> None:
        if not bucket or "/" in bucket:
            raise ConfigurationError(f"S3 store: invalid bucket name {bucket!r}")
        if sse not in SSE_MODES:
            raise ConfigurationError(f"S3 store: sse must be one of {SSE_MODES}, not {sse!r}")
        if kms_key_id and sse != "aws:kms":
            raise ConfigurationError("S3 store: kms_key_id needs sse=aws:kms")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if self.prefix:
            check_key(self.prefix, "prefix")
        self._root = f"{self.prefix}/" if self.prefix else ""
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self._owns_client = client is None
        self._region = region
        self._pool = POOL
        self._client: S3Client = client if client is not None else make_client(region)
        self._encryption: dict[str, Any] = {"ServerSideEncryption": sse}
        if kms_key_id:
            self._encryption["SSEKMSKeyId"] = kms_key_id
        self._acl: dict[str, Any] = {"ACL": "private"}
        self._lock = threading.Lock()
        self._last_ns = 0

    @classmethod
    def from_url(cls, url: str, **options: Any) -> S3Store:
        """``s3://BUCKET/PREFIX?sse=aws:kms&kms_key_id=ID&region=REGION``; ``options``
        (e.g. ``client=``) are passed to the constructor and win over the URL."""
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ConfigurationError(f"not an S3 store URL (s3://BUCKET/PREFIX): {url!r}")
        query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
        unknown = set(query) - _URL_OPTIONS
        if unknown:
            raise ConfigurationError(
                f"S3 store URL {url!r}: unknown option(s) {', '.join(sorted(unknown))}; "
                f"known: {', '.join(sorted(_URL_OPTIONS))}"
            )
        unknown = set(options) - _CONSTRUCTOR_OPTIONS
        if unknown:
            raise ConfigurationError(
                f"S3 store: unknown option(s) {', '.join(sorted(unknown))}; "
                f"accepted: {', '.join(sorted(_CONSTRUCTOR_OPTIONS))}"
            )
        arguments: dict[str, Any] = {"bucket": parts.netloc, "prefix": parts.path, **query}
        arguments.update(options)
        return cls(**arguments)

    # -- objects -------------------------------------------------------------------

    def put(self, key: str, data: bytes) -> None:
        self._put(self._key(key), data)

    def put_new(self, key: str, data: bytes) -> bool:
        try:
            self._put(self._key(key), data, IfNoneMatch="*")
        except PreconditionFailed:
            return False
        return True

    def get(self, key: str) -> bytes:
        return self._get(self._key(key))[0]

    def get_at_most(self, key: str, limit: int, setting: str = "the limit") -> bytes:
        """The GET's ContentLength is checked before its body is read, and the read
        stops one byte past ``limit`` whatever the header said."""
        full = self._key(key)
        with self._translate("read", full):
            response = self._client.get_object(Bucket=self.bucket, Key=full)
            body = response["Body"]
            try:
                size = int(response.get("ContentLength") or 0)
                if size > limit:
                    raise ObjectTooLarge(key, size, limit, setting)
                data = body.read(limit + 1)
            finally:
                body.close()
        if len(data) > limit:
            raise ObjectTooLarge(key, len(data), limit, setting)
        return data

    def read_chunks(self, key: str, chunk_size: int = CHUNK_SIZE) -> Generator[bytes, None, None]:
        """One GET, its body read ``chunk_size`` at a time as the chunks are taken."""
        full = self._key(key)
        with self._translate("read", full):
            body = self._client.get_object(Bucket=self.bucket, Key=full)["Body"]
        try:
            with self._translate("read", full):
                yield from body.iter_chunks(chunk_size)
        finally:
            body.close()

    def delete(self, key: str) -> None:
        full = self._key(key)
        with self._translate("delete", full):
            self._client.delete_object(Bucket=self.bucket, Key=full)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Objects under ``prefix`` in S3's order (UTF-8 bytes, the same as ``str``
        order); lease objects never appear."""
        full = self._root + check_prefix(prefix)
        leases = self._root + LEASES
        paginator = self._client.get_paginator("list_objects_v2")
        with self._translate("list", full):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
                for item in page.get("Contents", []):
                    name = item["Key"]
                    if name.startswith(leases):
                        continue
                    modified = item["LastModified"].timestamp()
                    yield ObjectInfo(name[len(self._root) :], item["Size"], modified)

    def exists(self, key: str) -> bool:
        full = self._key(key)
        try:
            with self._translate("look up", full):
                self._client.head_object(Bucket=self.bucket, Key=full)
        except KeyNotFound:
            return False
        return True

    def move(self, source: str, destination: str) -> bool:
        """Copy, then delete the source only if it is still the version copied. Of two
        moves of one object exactly one reports True; moves to two different places
        may both copy (the worker moves a batch only while it holds its claim)."""
        full_source, full_destination = self._key(source), self._key(destination)
        for _ in range(_CONFLICT_RETRIES):
            try:
                with self._translate("move", full_source):
                    head = self._client.head_object(Bucket=self.bucket, Key=full_source)
                self._copy(full_source, full_destination, head["ETag"])
            except KeyNotFound:
                return False
            except PreconditionFailed:
                continue  # replaced between the look and the copy: look again
            try:
                with self._translate("move", full_source):
                    self._client.delete_object(
                        Bucket=self.bucket, Key=full_source, IfMatch=head["ETag"]
                    )
            except KeyNotFound:
                return False  # another move deleted it first
            except PreconditionFailed:
                pass  # replaced after the copy: the version copied has moved, the new stays
            return True
        raise StoreError(f"cannot move s3://{self.bucket}/{full_source}: it keeps changing")

    # -- record logs -----------------------------------------------------------------

    def append(self, key: str, record: bytes) -> None:
        check_record(record)
        self._put(f"{self._key(key)}/{self._next_part()}", record + b"\n")

    def read_log(self, key: str) -> builtins.list[bytes]:
        parts = [info.key for info in self.list(f"{check_key(key)}/")]
        if len(parts) <= 1:
            chunks = [self._get_or_empty(part) for part in parts]
        else:
            with ThreadPoolExecutor(min(_READ_THREADS, len(parts))) as pool:
                chunks = list(pool.map(self._get_or_empty, parts))
        return [line for chunk in chunks for line in chunk.splitlines() if line]

    def delete_log(self, key: str) -> None:
        parts = [self._root + info.key for info in self.list(f"{check_key(key)}/")]
        for start in range(0, len(parts), _DELETE_BATCH):
            chunk = parts[start : start + _DELETE_BATCH]
            with self._translate("delete log", self._key(key)):
                response = self._client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": part} for part in chunk], "Quiet": True},
                )
            errors = response.get("Errors", [])
            if errors:
                first = errors[0]
                raise StoreError(
                    f"cannot delete log s3://{self.bucket}/{self._key(key)}: {len(errors)} "
                    f"object(s) not deleted, e.g. {first.get('Key')}: {first.get('Code')} "
                    f"{first.get('Message')}"
                )

    # -- claims ----------------------------------------------------------------------

    def claim(self, name: str, owner: str, ttl: float) -> Lease | None:
        full = self._lease_key(name)
        for _ in range(_CONFLICT_RETRIES):
            body = lease_body(owner, time.time() + ttl)
            etag = self._put_lease(full, body, owner, IfNoneMatch="*")
            if etag is not None:
                return Lease(name, owner, lease_expires(body), etag)
            try:
                current, etag = self._get(full)
            except KeyNotFound:
                continue  # released in between: try to create it again
            if lease_owner(current) != owner and lease_expires(current) > time.time():
                return None
            # expired, or this owner's own (a claim whose answer was lost): take it over
            body = lease_body(owner, time.time() + ttl)
            try:
                etag = self._put_lease(full, body, owner, IfMatch=etag)
            except KeyNotFound:
                continue
            return None if etag is None else Lease(name, owner, lease_expires(body), etag)
        return None

    def renew(self, lease: Lease, ttl: float) -> Lease:
        full = self._lease_key(lease.name)
        body = lease_body(lease.owner, time.time() + ttl)
        try:
            etag = self._put_lease(full, body, lease.owner, IfMatch=str(lease.token))
        except KeyNotFound:
            etag = None
        if etag is None:
            raise LeaseLost(
                f"claim {lease.name!r} at s3://{self.bucket}/{full} was taken over or released"
            )
        return Lease(lease.name, lease.owner, lease_expires(body), etag)

    def _put_lease(self, full: str, body: bytes, owner: str, **condition: Any) -> str | None:
        """Write a lease version; its ETag, or None when the condition did not hold.

        A 412 can answer this owner's own write: the PUT was applied, its answer lost,
        and botocore's retry (or the caller's) met the lease just written. A lease that
        names this owner (unique per worker) is its own, and so is the claim.
        """
        try:
            return self._put(full, body, **condition)
        except PreconditionFailed:
            try:
                current, etag = self._get(full)
            except KeyNotFound:
                return None
            return etag if lease_owner(current) == owner else None

    def release(self, lease: Lease) -> None:
        full = self._lease_key(lease.name)
        try:
            with self._translate("release", full):
                self._client.delete_object(Bucket=self.bucket, Key=full, IfMatch=str(lease.token))
        except (PreconditionFailed, KeyNotFound):
            pass  # taken over or already gone: not ours to delete

    def reserve_connections(self, threads: int) -> None:
        """Size the connection pool to ``threads`` plus this store's own reading threads,
        so that no thread waits for a connection or opens one outside the pool (urllib3:
        "Connection pool is full"). A client passed in is left as its owner made it."""
        wanted = threads + _READ_THREADS
        if not self._owns_client or wanted <= self._pool:
            return
        old, self._client = self._client, make_client(self._region, wanted)
        self._pool = wanted
        old.close()

    # -- life cycle ------------------------------------------------------------------

    def close(self) -> None:
        """Close the client's pooled connections (a later call opens new ones); a client
        passed in is left to its owner."""
        if self._owns_client:
            self._client.close()

    # -- helpers ---------------------------------------------------------------------

    def _key(self, key: str) -> str:
        return self._root + check_key(key)

    def _lease_key(self, name: str) -> str:
        return self._root + LEASES + check_key(name, "claim name")

    def _next_part(self) -> str:
        """A log part name that sorts after every part this store wrote before."""
        with self._lock:
            self._last_ns = max(time.time_ns(), self._last_ns + 1)
            stamp = self._last_ns
        return f"{stamp:020d}-{uuid.uuid4().hex[:8]}"

    def _put(self, full: str, data: bytes, **conditions: Any) -> str:
        """PUT with the ACL and encryption; the new ETag. 409 conflicts are retried."""
        for attempt in range(_CONFLICT_RETRIES):
            try:
                with self._translate("write", full):
                    response = self._client.put_object(
                        Bucket=self.bucket,
                        Key=full,
                        Body=data,
                        **self._acl,
                        **self._encryption,
                        **conditions,
                    )
                return response["ETag"]
            except AclRefused:
                self._drop_acl()
            except Conflict:
                time.sleep(0.05 * 2**attempt)
        raise StoreError(f"cannot write s3://{self.bucket}/{full}: conflicting writes go on")

    def _copy(self, full_source: str, full_destination: str, etag: str) -> None:
        for _ in range(2):
            try:
                with self._translate("copy", full_source):
                    self._client.copy_object(
                        Bucket=self.bucket,
                        Key=full_destination,
                        CopySource={"Bucket": self.bucket, "Key": full_source},
                        CopySourceIfMatch=etag,
                        **self._acl,
                        **self._encryption,
                    )
                return
            except AclRefused:
                self._drop_acl()

    def _drop_acl(self) -> None:
        if self._acl:
            log.warning(
                "bucket %s has ACLs disabled (bucket owner enforced): writing without "
                "ACL=private; its objects stay private to the bucket owner",
                self.bucket,
            )
        self._acl = {}

    def _get(self, full: str) -> tuple[bytes, str]:
        with self._translate("read", full):
            response = self._client.get_object(Bucket=self.bucket, Key=full)
            return response["Body"].read(), response["ETag"]

    def _get_or_empty(self, key: str) -> bytes:
        try:
            return self.get(key)
        except KeyNotFound:
            return b""  # deleted while the log was being read

    @contextmanager
    def _translate(self, action: str, full: str) -> Iterator[None]:
        """botocore errors in, mailspool errors out, naming the bucket and key."""
        where = f"s3://{self.bucket}/{full}"
        try:
            yield
        except ClientError as err:
            raise client_error(err, action, where) from err
        except BotoCoreError as err:
            raise StoreError(f"cannot {action} {where}: {err}") from err
