"""The local key file: created private, refused when exposed, missing or malformed."""

from __future__ import annotations

import json
import os
import pickle
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from hippocrate.vault import DecryptionError, KeyProviderError, UnknownKeyVersion
from hippocrate.vault.providers.file import FileKeyProvider
from hippocrate.vault.signatures import verify_signature


def test_created_with_owner_only_permissions(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "root.key"
    provider = FileKeyProvider.create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert provider.versions() == [1]
    assert provider.current_version() == 1


def test_create_refuses_to_overwrite(key_file: Path) -> None:
    before = key_file.read_bytes()
    with pytest.raises(KeyProviderError, match="already exists"):
        FileKeyProvider.create(key_file)
    assert key_file.read_bytes() == before


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o666])
def test_open_permissions_are_refused(key_file: Path, mode: int) -> None:
    key_file.chmod(mode)
    with pytest.raises(KeyProviderError, match=r"readable by others .* must be 0600"):
        FileKeyProvider(key_file)


def test_missing_file_says_to_run_init(tmp_path: Path) -> None:
    with pytest.raises(KeyProviderError, match="does not exist; run 'hippocrate init'"):
        FileKeyProvider(tmp_path / "absent.key")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file(key_file: Path) -> None:
    key_file.chmod(0o000)
    with pytest.raises(KeyProviderError, match="cannot be read"):
        FileKeyProvider(key_file)


def test_a_directory_is_not_a_key_file(tmp_path: Path) -> None:
    folder = tmp_path / "root.key"
    folder.mkdir(mode=0o700)
    with pytest.raises(KeyProviderError, match="not a regular file"):
        FileKeyProvider(folder)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not json",
        b"[]",
        b'{"format": 2, "root": {"1": "AAAA"}, "index": "AAAA"}',
        b'{"format": 1, "root": {}, "index": "AAAA"}',
        b'{"format": 1, "root": {"1": "AAAA"}, "index": "AAAA"}',
        b'{"format": 1, "root": {"x": "AAAA"}, "index": "AAAA"}',
        b'{"format": 1, "root": {"1": "!!!!"}, "index": "AAAA"}',
    ],
    ids=["empty", "text", "list", "format", "no-root", "short", "bad-version", "bad-base64"],
)
def test_malformed_file_is_refused(key_file: Path, content: bytes) -> None:
    key_file.write_bytes(content)
    with pytest.raises(KeyProviderError, match="malformed"):
        FileKeyProvider(key_file)


def test_wrap_is_bound_to_its_binding(key_file: Path) -> None:
    provider = FileKeyProvider(key_file)
    wrapped = provider.wrap(1, b"k" * 32, b"owner-a")
    assert provider.unwrap(1, wrapped, b"owner-a") == b"k" * 32
    with pytest.raises(DecryptionError, match="does not open"):
        provider.unwrap(1, wrapped, b"owner-b")
    tampered = bytearray(wrapped)
    tampered[-1] ^= 1
    with pytest.raises(DecryptionError):
        provider.unwrap(1, bytes(tampered), b"owner-a")
    with pytest.raises(DecryptionError, match="truncated"):
        provider.unwrap(1, wrapped[:20], b"owner-a")


def test_a_batch_wrap_binds_each_key_to_its_own_binding(key_file: Path) -> None:
    provider = FileKeyProvider(key_file)
    keys = [os.urandom(32) for _ in range(3)]
    bindings = [b"owner-a", b"owner-b", b"owner-c"]
    wrapped = provider.wrap_many(1, list(zip(keys, bindings, strict=True)))
    assert len(wrapped) == 3
    assert len({w[:12] for w in wrapped}) == 3  # a nonce of its own each
    for key, binding, blob in zip(keys, bindings, wrapped, strict=True):
        assert provider.unwrap(1, blob, binding) == key
    # A key of the batch does not open under its neighbour's binding.
    with pytest.raises(DecryptionError, match="does not open"):
        provider.unwrap(1, wrapped[0], b"owner-b")
    with pytest.raises(UnknownKeyVersion):
        provider.wrap_many(7, [(keys[0], b"owner-a")])
    assert provider.wrap_many(1, []) == []


def test_versions_and_rotation(key_file: Path) -> None:
    provider = FileKeyProvider(key_file)
    old = provider.wrap(1, b"k" * 32, b"b")
    provider.create_version(2)
    provider.create_version(2)  # idempotent
    assert provider.versions() == [1, 2]
    assert provider.current_version() == 2
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert provider.unwrap(1, old, b"b") == b"k" * 32
    assert FileKeyProvider(key_file).unwrap(1, old, b"b") == b"k" * 32  # persisted
    with pytest.raises(UnknownKeyVersion, match="version 3"):
        provider.unwrap(3, old, b"b")


def test_index_keys_differ_per_purpose_and_per_file(tmp_path: Path, key_file: Path) -> None:
    provider = FileKeyProvider(key_file)
    other = FileKeyProvider.create(tmp_path / "other.key")
    assert provider.derive_index_key(b"email") == provider.derive_index_key(b"email")
    assert provider.derive_index_key(b"email") != provider.derive_index_key(b"phone")
    assert provider.derive_index_key(b"email") != other.derive_index_key(b"email")
    assert len(provider.derive_index_key(b"email")) == 32


def test_never_prints_or_pickles_keys(key_file: Path) -> None:
    provider = FileKeyProvider(key_file)
    secrets = json.loads(key_file.read_bytes())
    text = repr(provider)
    assert secrets["index"] not in text
    assert all(k not in text for k in secrets["root"].values())
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(provider)


# -- several processes on one key file ----------------------------------------------------


def _in_another_process(code: str, key_file: Path) -> None:
    """Run ``code`` with ``provider`` open on ``key_file`` in a fresh Python process."""
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from hippocrate.vault.providers.file import FileKeyProvider\n"
        "provider = FileKeyProvider(Path(sys.argv[1]))\n" + code
    )
    subprocess.run([sys.executable, "-c", script, str(key_file)], check=True, timeout=60)


def test_a_version_created_by_another_process_is_used_for_the_next_wrap(key_file: Path) -> None:
    provider = FileKeyProvider(key_file)
    assert provider.current_version() == 1
    _in_another_process("provider.create_version(2)\n", key_file)

    assert provider.current_version() == 2
    assert provider.versions() == [1, 2]
    wrapped = provider.wrap(2, b"k" * 32, b"b")
    assert FileKeyProvider(key_file).unwrap(2, wrapped, b"b") == b"k" * 32


def test_an_unknown_version_reloads_the_file_before_failing(key_file: Path) -> None:
    provider = FileKeyProvider(key_file)
    other = FileKeyProvider(key_file)
    other.create_version(2)
    wrapped = other.wrap(2, b"k" * 32, b"b")
    # Same size and, on a coarse clock, the same modification time: only the version
    # asked for tells this provider to look again.
    assert provider.unwrap(2, wrapped, b"b") == b"k" * 32
    with pytest.raises(UnknownKeyVersion, match="version 3"):
        provider.unwrap(3, wrapped, b"b")


def test_retire_removes_a_version_in_every_process(key_file: Path) -> None:
    provider = FileKeyProvider(key_file)
    old = provider.wrap(1, b"k" * 32, b"b")
    index_before = provider.derive_index_key(b"email")
    public_before = provider.signing_public_key()
    _in_another_process("provider.create_version(2)\nprovider.retire_version(1)\n", key_file)

    assert provider.versions() == [2]
    with pytest.raises(UnknownKeyVersion, match="version 1"):
        provider.unwrap(1, old, b"b")
    assert "1" not in json.loads(key_file.read_bytes())["root"]
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    # Neither the index key nor the audit signing key depends on a root key version.
    assert provider.derive_index_key(b"email") == index_before
    assert provider.signing_public_key() == public_before


def test_retire_refuses_the_current_and_unknown_versions(key_file: Path) -> None:
    provider = FileKeyProvider(key_file)
    with pytest.raises(KeyProviderError, match="version 1 is the current one"):
        provider.retire_version(1)
    provider.create_version(2)
    with pytest.raises(UnknownKeyVersion, match="version 5"):
        provider.retire_version(5)
    with pytest.raises(KeyProviderError, match="version 2 is the current one"):
        provider.retire_version(2)
    assert provider.versions() == [1, 2]


def test_a_key_file_exposed_while_running_is_refused_at_next_use(key_file: Path) -> None:
    provider = FileKeyProvider(key_file)
    key_file.chmod(0o644)
    with pytest.raises(KeyProviderError, match="readable by others"):
        provider.current_version()


def test_concurrent_writers_lose_no_version(key_file: Path) -> None:
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys\n"
                "from pathlib import Path\n"
                "from hippocrate.vault.providers.file import FileKeyProvider\n"
                "provider = FileKeyProvider(Path(sys.argv[1]))\n"
                "for v in range(int(sys.argv[2]), int(sys.argv[2]) + 10):\n"
                "    provider.create_version(v)\n",
                str(key_file),
                str(start),
            ]
        )
        for start in (2, 12, 22)
    ]
    assert [p.wait(timeout=60) for p in processes] == [0, 0, 0]
    assert FileKeyProvider(key_file).versions() == list(range(1, 32))


# -- the audit signing key in a file of its own ---------------------------------------------


def test_the_signing_key_can_live_in_a_file_of_its_own(tmp_path: Path) -> None:
    key_file, signing_file = tmp_path / "data" / "root.key", tmp_path / "outside" / "audit.key"
    provider = FileKeyProvider.initialise(key_file, signing_key_file=signing_file)

    assert "audit" not in json.loads(key_file.read_bytes())
    assert "audit" in json.loads(signing_file.read_bytes())
    assert stat.S_IMODE(signing_file.stat().st_mode) == 0o600
    signature = provider.sign(b"checkpoint")
    assert verify_signature(provider.signing_public_key(), b"checkpoint", signature)
    # Without the setting, the key file alone cannot sign.
    with pytest.raises(KeyProviderError, match="holds no audit signing key"):
        FileKeyProvider(key_file).sign(b"checkpoint")
    # Run again (init is idempotent): the same key.
    again = FileKeyProvider.initialise(key_file, signing_key_file=signing_file)
    assert again.signing_public_key() == provider.signing_public_key()


def test_init_moves_the_signing_key_out_of_the_key_file(key_file: Path, tmp_path: Path) -> None:
    public = FileKeyProvider(key_file).signing_public_key()
    signing_file = tmp_path / "outside" / "audit.key"

    moved = FileKeyProvider.initialise(key_file, signing_key_file=signing_file)

    # Checkpoints signed before still verify: it is the same key, now only outside.
    assert moved.signing_public_key() == public
    assert "audit" not in json.loads(key_file.read_bytes())
    assert FileKeyProvider(key_file, signing_key_file=signing_file).signing_public_key() == public


def test_an_exposed_or_missing_signing_key_file_is_refused(key_file: Path, tmp_path: Path) -> None:
    signing_file = tmp_path / "audit.key"
    with pytest.raises(KeyProviderError, match="does not exist; run 'hippocrate init'"):
        FileKeyProvider(key_file, signing_key_file=signing_file)
    FileKeyProvider.initialise(key_file, signing_key_file=signing_file)
    signing_file.chmod(0o640)
    with pytest.raises(KeyProviderError, match=r"audit signing key file .* readable by others"):
        FileKeyProvider(key_file, signing_key_file=signing_file)


def test_two_different_signing_keys_are_refused(key_file: Path, tmp_path: Path) -> None:
    signing_file = tmp_path / "audit.key"
    FileKeyProvider.create(tmp_path / "other.key", signing_key_file=signing_file)
    with pytest.raises(KeyProviderError, match="hold different audit signing keys"):
        FileKeyProvider.initialise(key_file, signing_key_file=signing_file)
    assert "audit" in json.loads(key_file.read_bytes())  # nothing lost
