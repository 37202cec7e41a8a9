"""The S3 store against moto in server mode: real HTTP, plain boto3, nothing patched.

``TestS3Store`` runs the store contract; the other tests check what only S3 has:
ACLs, encryption, lease takeover by ETag, prefixes sharing a bucket, error translation.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import boto3
import pytest
from botocore.config import Config

from mailspool.errors import ConfigurationError, KeyNotFound, LeaseLost, StoreError
from mailspool.stores import open_store
from mailspool.stores import s3 as s3_store
from mailspool.stores.s3 import S3Store
from tests.fixtures.moto_server import MotoServer
from tests.store_contract import StoreContract, race

BUCKET = "mailspool-test"


@pytest.fixture
def s3(aws: MotoServer) -> Any:
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def store(s3: Any) -> Iterator[S3Store]:
    with closing(S3Store(bucket=BUCKET, prefix="spool/test")) as store:
        yield store


class TestS3Store(StoreContract):
    """Every promise of ``Store``, kept by S3. One append is one PUT (moto: a few hundred
    a second), so the concurrent-append test runs smaller here."""

    log_threads = 4
    log_records = 25


# -- configuration ---------------------------------------------------------------------


def test_from_url_reads_bucket_prefix_and_options(aws: MotoServer) -> None:
    store = S3Store.from_url(
        "s3://bucket-a/some/prefix/?sse=aws:kms&kms_key_id=k-1&region=eu-west-1"
    )
    assert (store.bucket, store.prefix, store.url) == (
        "bucket-a",
        "some/prefix",
        "s3://bucket-a/some/prefix",
    )
    assert store._encryption == {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "k-1"}
    assert store._client.meta.region_name == "eu-west-1"
    bare = S3Store.from_url("s3://bucket-a/")
    assert (bare.prefix, bare.url) == ("", "s3://bucket-a")
    with pytest.raises(ConfigurationError, match="colour"):
        S3Store.from_url("s3://bucket-a", colour="blue")


def test_open_store_opens_s3_urls(s3: Any) -> None:
    with open_store("s3://mailspool-test/spool?sse=AES256") as store:
        assert isinstance(store, S3Store)
        store.put("queue/a.json", b"{}")
    assert s3.head_object(Bucket=BUCKET, Key="spool/queue/a.json")["ContentLength"] == 2


@pytest.mark.parametrize(
    "url",
    [
        "s3:///prefix",
        "file:///tmp/x",
        "s3://bucket-a?colour=blue",
        "s3://bucket-a?sse=rot13",
        "s3://bucket-a?kms_key_id=k-1",  # a KMS key without aws:kms
        "s3://bucket-a/../up",
    ],
)
def test_bad_urls_are_configuration_errors(aws: MotoServer, url: str) -> None:
    with pytest.raises(ConfigurationError):
        S3Store.from_url(url)


@pytest.mark.parametrize("key", ["", "/abs", "a//b", ".leases/x", "queue/.hidden", "a\\b"])
def test_keys_follow_the_file_store_rules(store: S3Store, key: str) -> None:
    with pytest.raises(ConfigurationError, match="invalid store key"):
        store.put(key, b"x")


# -- what every write carries ------------------------------------------------------------


def test_objects_are_private_and_encrypted_with_aes256(store: S3Store, s3: Any) -> None:
    sent: list[tuple[str, str | None, str | None]] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        headers = params["headers"]
        sent.append(
            (model.name, headers.get("x-amz-acl"), headers.get("x-amz-server-side-encryption"))
        )

    store._client.meta.events.register("before-call.s3.PutObject", record)
    store._client.meta.events.register("before-call.s3.CopyObject", record)
    store.put("queue/a.json", b"{}")
    store.put_new("blobs/b", b"x")
    store.append("ledger/c", b"[]")
    store.move("queue/a.json", "done/a.json")
    assert store.claim("lease", "me", ttl=60) is not None
    assert sorted(set(sent)) == [
        ("CopyObject", "private", "AES256"),
        ("PutObject", "private", "AES256"),
    ]
    assert len(sent) == 5
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert len(keys) == 4
    for key in keys:
        acl = s3.get_object_acl(Bucket=BUCKET, Key=key)
        grants = [(g["Grantee"].get("ID"), g["Permission"]) for g in acl["Grants"]]
        assert grants == [(acl["Owner"]["ID"], "FULL_CONTROL")]
        assert s3.head_object(Bucket=BUCKET, Key=key)["ServerSideEncryption"] == "AES256"


def test_kms_encryption_uses_the_given_key(s3: Any) -> None:
    key_id = boto3.client("kms").create_key()["KeyMetadata"]["KeyId"]
    with closing(S3Store(bucket=BUCKET, sse="aws:kms", kms_key_id=key_id)) as store:
        store.put("queue/a.json", b"{}")
        store.move("queue/a.json", "done/a.json")
        head = s3.head_object(Bucket=BUCKET, Key="done/a.json")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == key_id


def test_a_bucket_that_refuses_acls_is_written_without_one(s3: Any) -> None:
    """A stub for a fault moto cannot produce: moto does not enforce Object Ownership
    "bucket owner enforced", so a botocore hook answers the first ACL'd PUT with S3's
    ``AccessControlListNotSupported``, as real S3 does for such a bucket."""
    client = boto3.client("s3")
    refused: list[str] = []

    def refuse_acl(params: dict[str, Any], **_: Any) -> Any:
        if "x-amz-acl" in params["headers"]:
            refused.append(params["url_path"])
            body = (
                b"<Error><Code>AccessControlListNotSupported</Code>"
                b"<Message>The bucket does not allow ACLs</Message></Error>"
            )
            return _http_response(400, body), {
                "Error": {"Code": "AccessControlListNotSupported", "Message": "no ACLs"},
                "ResponseMetadata": {"HTTPStatusCode": 400},
            }
        return None

    client.meta.events.register("before-call.s3.PutObject", refuse_acl)
    with closing(S3Store(bucket=BUCKET, client=client)) as store:
        store.put("queue/a.json", b"1")
        store.put("queue/b.json", b"2")
        assert store.get("queue/a.json") == b"1"
    assert len(refused) == 1  # learnt once, then written without an ACL
    assert s3.head_object(Bucket=BUCKET, Key="queue/b.json")["ServerSideEncryption"] == "AES256"


# -- claims ------------------------------------------------------------------------------


def test_a_lease_is_taken_over_only_after_it_expires(store: S3Store) -> None:
    first = store.claim("batch-1", "worker-a", ttl=0.5)
    assert first is not None
    assert store.claim("batch-1", "worker-b", ttl=0.5) is None
    time.sleep(max(0.0, first.expires - time.time()) + 0.05)
    second = store.claim("batch-1", "worker-b", ttl=30)
    assert second is not None
    assert second.owner == "worker-b"
    assert second.token != first.token
    assert store.claim("batch-1", "worker-a", ttl=30) is None


def test_renew_after_takeover_raises_lease_lost(store: S3Store) -> None:
    lease = store.claim("batch-1", "worker-a", ttl=0.2)
    assert lease is not None
    time.sleep(max(0.0, lease.expires - time.time()) + 0.05)
    assert store.claim("batch-1", "worker-b", ttl=30) is not None
    with pytest.raises(LeaseLost, match="batch-1"):
        store.renew(lease, ttl=30)


def test_release_after_takeover_leaves_the_new_holder_alone(store: S3Store) -> None:
    old = store.claim("batch-1", "worker-a", ttl=0.2)
    assert old is not None
    time.sleep(max(0.0, old.expires - time.time()) + 0.05)
    new = store.claim("batch-1", "worker-b", ttl=30)
    assert new is not None
    store.release(old)  # conditional on old's ETag: no effect
    assert store.claim("batch-1", "worker-c", ttl=30) is None
    assert store.renew(new, ttl=30).owner == "worker-b"


def test_the_lease_object_holds_owner_and_expiry(store: S3Store, s3: Any) -> None:
    lease = store.claim("batch-1", "worker-a", ttl=60)
    assert lease is not None
    obj = s3.get_object(Bucket=BUCKET, Key="spool/test/.leases/batch-1")
    body = json.loads(obj["Body"].read())
    assert body["owner"] == "worker-a"
    assert body["expires"] == pytest.approx(lease.expires)
    assert obj["ETag"] == lease.token
    assert list(store.keys("")) == []  # leases are not objects of the store


def test_a_corrupt_lease_counts_as_expired(store: S3Store, s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="spool/test/.leases/batch-1", Body=b"not json")
    assert store.claim("batch-1", "worker-a", ttl=30) is not None


# -- layout ------------------------------------------------------------------------------


def test_stores_with_different_prefixes_share_a_bucket_without_seeing_each_other(
    s3: Any,
) -> None:
    with (
        closing(S3Store(bucket=BUCKET, prefix="one")) as one,
        S3Store(bucket=BUCKET, prefix="two") as two,
    ):
        one.put("queue/a.json", b"1")
        two.put("queue/a.json", b"2")
        one.append("ledger/x", b"from one")
        assert one.claim("batch", "w", ttl=30) is not None
        assert two.claim("batch", "w", ttl=30) is not None
        assert [i.key for i in one.list("")] == ["ledger/x/" + _part(one), "queue/a.json"]
        assert list(two.keys("")) == ["queue/a.json"]
        assert (one.get("queue/a.json"), two.get("queue/a.json")) == (b"1", b"2")
        assert two.read_log("ledger/x") == []
    keys = sorted(item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET)["Contents"])
    assert [k for k in keys if not k.startswith(("one/ledger/", "one/.leases", "two/.leases"))] == [
        "one/queue/a.json",
        "two/queue/a.json",
    ]


def test_a_log_is_a_folder_of_objects_read_in_order(store: S3Store, s3: Any) -> None:
    records = [f"record {i}".encode() for i in range(25)]
    for record in records:
        store.append("ledger/batch", record)
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="spool/test/ledger/batch/")
    assert listed["KeyCount"] == 25
    assert store.read_log("ledger/batch") == records
    store.delete_log("ledger/batch")
    assert store.read_log("ledger/batch") == []
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="spool/test/")["KeyCount"] == 0


def test_delete_log_deletes_in_chunks(
    store: S3Store, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """S3 deletes at most 1000 keys per request; a chunk of 3 shows the chunking."""
    monkeypatch.setattr(s3_store, "_DELETE_BATCH", 3)
    requests: list[int] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        requests.append(params["body"].count(b"<Key>"))

    store._client.meta.events.register("before-call.s3.DeleteObjects", record)
    for i in range(7):
        store.append("ledger/big", f"record {i}".encode())
    store.delete_log("ledger/big")
    assert requests == [3, 3, 1]
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="spool/test/")["KeyCount"] == 0


def test_of_concurrent_moves_exactly_one_reports_true(store: S3Store) -> None:
    store.put("queue/a.json", b"batch")
    results = race(8, lambda _: store.move("queue/a.json", "done/a.json"))
    assert results.count(True) == 1
    assert store.get("done/a.json") == b"batch"
    assert not store.exists("queue/a.json")


# -- errors ------------------------------------------------------------------------------


def test_errors_name_the_bucket_and_key(store: S3Store) -> None:
    with pytest.raises(KeyNotFound, match=r"s3://mailspool-test/spool/test/queue/missing\.json"):
        store.get("queue/missing.json")
    missing = S3Store(bucket="no-such-bucket", prefix="p")
    with pytest.raises(StoreError, match=r"s3://no-such-bucket/p/queue/a\.json.*NoSuchBucket"):
        missing.put("queue/a.json", b"{}")
    missing.close()


def test_an_unreachable_endpoint_is_a_store_error(aws: MotoServer) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # free once closed: nothing listens there
    client = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        config=Config(connect_timeout=0.5, read_timeout=0.5, retries={"total_max_attempts": 1}),
    )
    with closing(S3Store(bucket=BUCKET, client=client)) as store:
        with pytest.raises(StoreError, match=r"cannot write s3://mailspool-test/queue/a\.json"):
            store.put("queue/a.json", b"{}")
        with pytest.raises(StoreError, match="cannot list"):
            list(store.list("queue/"))


def _part(store: S3Store) -> str:
    return next(store.keys("ledger/x/")).rpartition("/")[2]


def _http_response(status: int, body: bytes) -> Any:
    from botocore.awsrequest import AWSResponse
    from botocore.compat import HTTPHeaders

    class _Raw:
        def stream(self, **_: Any) -> Iterator[bytes]:
            yield body

    return AWSResponse("http://stub", status, HTTPHeaders(), _Raw())


def test_the_store_and_the_ses_transport_make_clients_under_one_lock() -> None:
    """boto3's default session is one object: two locks would not exclude each other.
    Both make their clients with the one function that takes the one lock."""
    from mailspool import _backends
    from mailspool.aws import sqs
    from mailspool.feedback import ses_sync
    from mailspool.stores import s3_support
    from mailspool.transports import ses

    assert s3_support.boto3_client is ses.boto3_client is _backends.boto3_client
    assert sqs.boto3_client is ses_sync.boto3_client is _backends.boto3_client
