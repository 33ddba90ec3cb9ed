"""The blob store: sealed bodies as files 0600 in folders 0700, written atomically,
named by id only; and blobs that follow the fate of their transaction."""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hippocrate.blobs import BlobNotFound, FileBlobStore, delete_after_commit, put_in_transaction
from tests.conftest import Store


@pytest.fixture
def loose_umask() -> Iterator[None]:
    previous = os.umask(0o002)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_put_get_delete(tmp_path: Path, loose_umask: None) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    blob_id = uuid.uuid4()

    store.put(blob_id, b"\x01sealed bytes")

    assert store.get(blob_id) == b"\x01sealed bytes"
    assert store.exists(blob_id)
    path = store.path_of(blob_id)
    assert path.name == str(blob_id)
    assert path.parent.name == str(blob_id)[:2]
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert mode(tmp_path / "blobs") == 0o700
    assert store.delete(blob_id) is True
    assert store.delete(blob_id) is False
    with pytest.raises(BlobNotFound, match=str(blob_id)):
        store.get(blob_id)


def test_an_existing_folder_is_tightened(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    root.mkdir(mode=0o755)
    root.chmod(0o755)

    FileBlobStore(root).put(uuid.uuid4(), b"x")

    assert mode(root) == 0o700


def test_replacing_is_atomic_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    blob_id = uuid.uuid4()
    store.put(blob_id, b"first")

    store.put(blob_id, b"second")

    assert store.get(blob_id) == b"second"
    assert [p.name for p in store.path_of(blob_id).parent.iterdir()] == [str(blob_id)]


def test_a_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    blob_id = uuid.uuid4()

    def no_space(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError, match="No space"):
        store.put(blob_id, b"sealed")

    assert list(store.path_of(blob_id).parent.iterdir()) == []


def test_only_uuids_name_blobs(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    with pytest.raises(TypeError):
        store.put("../../etc/passwd", b"x")  # type: ignore[arg-type]


def test_blobs_follow_their_transaction(sqlite_store: Store, tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    kept, dropped, to_delete, survives = (uuid.uuid4() for _ in range(4))
    store.put(to_delete, b"old")
    store.put(survives, b"old")

    with sqlite_store.sessions.begin() as session:
        put_in_transaction(session=session, store=store, blob_id=kept, data=b"kept")
        delete_after_commit(session=session, store=store, blob_id=to_delete)
        assert store.exists(to_delete)  # not before the commit

    def failing_unit_of_work() -> None:
        with sqlite_store.sessions.begin() as session:
            put_in_transaction(session=session, store=store, blob_id=dropped, data=b"dropped")
            delete_after_commit(session=session, store=store, blob_id=survives)
            assert store.exists(dropped)
            raise RuntimeError("the unit of work fails")

    with pytest.raises(RuntimeError, match="fails"):
        failing_unit_of_work()

    assert store.get(kept) == b"kept"
    assert not store.exists(dropped)
    assert not store.exists(to_delete)
    assert store.get(survives) == b"old"
