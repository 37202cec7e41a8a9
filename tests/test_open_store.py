"""open_store: which URL opens which store, and what a wrong URL says."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

import mailspool.stores
from mailspool.errors import ConfigurationError, MissingDependency
from mailspool.stores import open_store
from mailspool.stores.file import FileStore
from mailspool.stores.memory import MemoryStore


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def file_root(url: str | Path) -> Path:
    store = open_store(url)
    assert isinstance(store, FileStore)
    return store.root


def test_file_url_with_an_absolute_path(tmp_path: Path) -> None:
    assert file_root(f"file://{tmp_path}/spool") == tmp_path / "spool"
    assert file_root(f"file:{tmp_path}/spool") == tmp_path / "spool"
    assert file_root(f"FILE://{tmp_path}/spool") == tmp_path / "spool"


def test_file_url_with_a_relative_path_is_under_the_current_directory(cwd: Path) -> None:
    assert file_root("file://spool/mail") == cwd / "spool/mail"
    assert file_root("file:spool") == cwd / "spool"


def test_a_plain_path_is_a_file_store(cwd: Path) -> None:
    assert file_root("spool") == cwd / "spool"
    assert file_root(str(cwd / "abs")) == cwd / "abs"
    assert file_root(Path("as-path")) == cwd / "as-path"


def test_tilde_is_the_home_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert file_root("file://~/spool") == tmp_path / "spool"
    assert file_root("~/spool") == tmp_path / "spool"


def test_the_store_url_opens_the_same_folder(tmp_path: Path) -> None:
    store = open_store(tmp_path / "spool")
    assert store.url == f"file://{tmp_path}/spool"
    assert file_root(store.url) == tmp_path / "spool"


def test_file_url_without_a_folder_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="names no folder"):
        open_store("file://")


def test_memory_url_opens_a_new_store_each_time() -> None:
    first, second = open_store("memory:"), open_store("memory:")
    assert isinstance(first, MemoryStore)
    assert first is not second
    first.put("a", b"x")
    assert list(second.list("")) == []


def test_named_memory_url_is_shared_in_the_process() -> None:
    name = f"test-{uuid.uuid4().hex}"
    producer = open_store(f"memory:{name}")
    worker = open_store(f"memory://{name}")
    assert worker is producer
    assert producer.url == f"memory:{name}"
    producer.put("queue/a.json", b"batch")
    assert open_store(f"memory:{name}").get("queue/a.json") == b"batch"


def test_options_reach_the_backend() -> None:
    store = open_store("memory:", clock=lambda: 42.0)
    store.put("a", b"x")
    assert [info.modified for info in store.list("a")] == [42.0]


@pytest.mark.parametrize("url", ["ftp://host/spool", "redis://localhost:6379/0", "sqs:queue"])
def test_an_unknown_scheme_names_the_url_and_the_known_ones(url: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        open_store(url)
    message = str(caught.value)
    assert repr(url) in message
    for known in ("file://", "memory:", "s3://"):
        assert known in message


def test_all_names_exist() -> None:
    assert {"Store", "Lease", "ObjectInfo", "open_store"} <= set(mailspool.stores.__all__)
    for name in mailspool.stores.__all__:
        assert hasattr(mailspool.stores, name), name


@pytest.mark.parametrize("missing", ["boto3", "botocore"])
def test_s3_without_the_aws_extra_names_it(missing: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "mailspool.stores.s3", raising=False)
    for name in [n for n in sys.modules if n == missing or n.startswith(f"{missing}.")]:
        monkeypatch.setitem(sys.modules, name, None)  # makes importing it fail
    monkeypatch.setitem(sys.modules, missing, None)
    with pytest.raises(MissingDependency, match=r"the S3 store .*mailspool\[aws\]") as raised:
        open_store("s3://bucket/prefix", region="eu-west-1")
    assert raised.value.extra == "aws"
