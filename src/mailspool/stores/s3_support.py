"""What the S3 store needs from botocore and its own lease objects: the client (its
retries and pool), S3's errors translated into the store's, and the JSON a lease holds."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING

from botocore.config import Config
from botocore.exceptions import ClientError

from mailspool._backends import boto3_client
from mailspool.errors import KeyNotFound, StoreError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = [
    "POOL",
    "AclRefused",
    "Conflict",
    "PreconditionFailed",
    "client_config",
    "client_error",
    "lease_body",
    "lease_expires",
    "lease_owner",
    "make_client",
]

POOL = 32  # connections until a worker reserves more (``S3Store.reserve_connections``)


def client_config(max_connections: int = POOL) -> Config:
    """Retries with backoff for S3's 503 SlowDown; a pool of ``max_connections``."""
    return Config(
        retries={"mode": "standard", "max_attempts": 5},
        max_pool_connections=max_connections,
        connect_timeout=5,
        read_timeout=30,
    )


class PreconditionFailed(StoreError):
    """412: an If-None-Match / If-Match condition did not hold."""


class Conflict(StoreError):
    """409: a concurrent conditional write on the same key; try again."""


class AclRefused(StoreError):
    """The bucket has ACLs disabled and refuses ``ACL=private``."""


def client_error(err: ClientError, action: str, where: str) -> StoreError:
    error = err.response.get("Error", {})
    code = str(error.get("Code", ""))
    status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code in ("NoSuchKey", "NotFound") or (code == "404" and status == 404):
        return KeyNotFound(f"{where}: no such object")
    if code == "PreconditionFailed" or status == 412:
        return PreconditionFailed(f"cannot {action} {where}: precondition failed")
    if code == "ConditionalRequestConflict":
        return Conflict(f"cannot {action} {where}: conflicting conditional write")
    if code == "AccessControlListNotSupported":
        return AclRefused(f"cannot {action} {where}: the bucket refuses ACLs")
    message = error.get("Message") or ""
    return StoreError(f"cannot {action} {where}: {code or status} {message}".rstrip())


def make_client(region: str | None, max_connections: int = POOL) -> S3Client:
    client: S3Client = boto3_client(
        "s3", region, client_config(max_connections), user="the S3 store (s3://)"
    )
    return client


def lease_body(owner: str, expires: float) -> bytes:
    """The lease's JSON; the nonce makes every version's ETag distinct."""
    return json.dumps({"owner": owner, "expires": expires, "nonce": uuid.uuid4().hex}).encode()


def lease_owner(data: bytes) -> str | None:
    """Who wrote a lease; None when it cannot be read."""
    try:
        owner = json.loads(data)["owner"]
    except (ValueError, KeyError, TypeError):
        return None
    return owner if isinstance(owner, str) else None


def lease_expires(data: bytes) -> float:
    """When a lease expires; an unreadable lease counts as expired (it can be taken)."""
    try:
        value = json.loads(data)["expires"]
    except (ValueError, KeyError, TypeError):
        return 0.0
    return float(value) if isinstance(value, int | float) else 0.0
