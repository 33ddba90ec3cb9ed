"""Field encryption: the vault against raw AES-GCM and two peers, on the same data.

Every contender encrypts then decrypts the same values: the eight sealed fields of
synthetic patients, encoded by the codecs of the patient model. "Per field" averages
over every value; "per record" seals and opens the eight fields of one patient.
"Padding" measures, per field, sealed format 2 (padded to the field's buckets) against
format 1 (unpadded) in the same run.
"""

from __future__ import annotations

import hmac
import os
import random
import secrets
import struct
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

# The floor is the primitive itself, so this benchmark uses what only the vault may.
from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: TID251
from pydantic import BaseModel
from sqlalchemy import String
from sqlalchemy.dialects import sqlite
from sqlalchemy_utils.types.encrypted.encrypted_type import AesGcmEngine, StringEncryptedType

from bench.timing import Case, Timing, measure
from hippocrate.patients.models import Patient
from hippocrate.patients.synthetic import SyntheticPatients
from hippocrate.vault import DataKey, FieldContext, Padding, Vault
from hippocrate.vault.blind_index import BITS
from hippocrate.vault.fields import open_sealed, seal, seal_v1
from hippocrate.vault.providers.file import FileKeyProvider

NONCE_BYTES = 12
#: The vault authenticates its 5-byte header (format, key version) before the context.
_VAULT_HEADER = struct.pack(">BI", 1, 1)

TARGET_RATIO = 1.5


@dataclass(frozen=True)
class FieldValue:
    """One sealed field of one patient, as the vault receives it."""

    patient: int
    column: str
    text: str  # what a string-typed column library is handed
    plaintext: bytes  # the same value through the model's codec
    context: FieldContext
    associated_data: bytes  # header and context, as the vault authenticates them
    padding: Padding  # the buckets the model declares for the field


@dataclass(frozen=True)
class Dataset:
    seed: int
    row_ids: list[uuid.UUID]
    records: list[list[FieldValue]]

    @property
    def values(self) -> list[FieldValue]:
        return [value for record in self.records for value in record]


def synthetic_dataset(*, patients: int, seed: int) -> Dataset:
    """``patients`` synthetic patients, their sealed fields encoded as the model does."""
    source = SyntheticPatients(seed=seed)
    ids = random.Random(seed)
    table = Patient.__tablename__
    mapper = Patient.__mapper__
    row_ids: list[uuid.UUID] = []
    records: list[list[FieldValue]] = []
    for index in range(patients):
        person = source.patient()
        row_id = uuid.UUID(int=ids.getrandbits(128), version=4)
        record = []
        for name, sealed in Patient.__sealed_fields__.items():
            value = getattr(person, name)
            if isinstance(value, BaseModel):
                value = value.model_dump()  # as patients.service stores the address
            plaintext = sealed.codec.encode(value)
            column = mapper.get_property(sealed.column_attr).columns[0].name
            context = FieldContext(table, column, row_id)
            record.append(
                FieldValue(
                    patient=index,
                    column=column,
                    text=plaintext.decode("utf-8"),
                    plaintext=plaintext,
                    context=context,
                    associated_data=_VAULT_HEADER + context.associated_data,
                    padding=sealed.pad,
                )
            )
        row_ids.append(row_id)
        records.append(record)
    return Dataset(seed=seed, row_ids=row_ids, records=records)


@dataclass(frozen=True)
class Contender:
    """A way to protect a field. ``roundtrip`` is the timed loop (encrypt then decrypt
    each prepared item, written out inline so no contender pays for harness calls);
    ``seal`` and ``open`` do the same one item at a time, to check and size it."""

    name: str
    prepare: Callable[[FieldValue], Any]
    roundtrip: Callable[[Sequence[Any]], None]
    seal: Callable[[Any], bytes | str]
    open: Callable[[Any, Any], bytes | str]


def raw_aesgcm(data: Dataset) -> Contender:
    aeads = [AESGCM(AESGCM.generate_key(bit_length=256)) for _ in data.row_ids]

    def prepare(value: FieldValue) -> tuple[AESGCM, bytes, bytes]:
        return aeads[value.patient], value.plaintext, value.associated_data

    def roundtrip(items: Sequence[tuple[AESGCM, bytes, bytes]]) -> None:
        for aead, plaintext, ad in items:
            nonce = os.urandom(NONCE_BYTES)
            blob = nonce + aead.encrypt(nonce, plaintext, ad)
            aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], ad)

    def seal(item: tuple[AESGCM, bytes, bytes]) -> bytes:
        aead, plaintext, ad = item
        nonce = os.urandom(NONCE_BYTES)
        return nonce + aead.encrypt(nonce, plaintext, ad)

    def open_(item: tuple[AESGCM, bytes, bytes], blob: bytes) -> bytes:
        aead, _, ad = item
        return aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], ad)

    return Contender("raw AESGCM (floor)", prepare, roundtrip, seal, open_)


def vault_fields(data: Dataset, vault: Vault) -> Contender:
    keys = [vault.new_data_key(row_id)[1] for row_id in data.row_ids]

    def prepare(value: FieldValue) -> tuple[DataKey, bytes, FieldContext]:
        return keys[value.patient], value.plaintext, value.context

    def roundtrip(items: Sequence[tuple[DataKey, bytes, FieldContext]]) -> None:
        for key, plaintext, context in items:
            vault.open(key, vault.seal(key, plaintext, context), context)

    def seal(item: tuple[DataKey, bytes, FieldContext]) -> bytes:
        key, plaintext, context = item
        return vault.seal(key, plaintext, context)

    def open_(item: tuple[DataKey, bytes, FieldContext], blob: bytes) -> bytes:
        key, _, context = item
        return vault.open(key, blob, context)

    return Contender("Vault.seal / Vault.open", prepare, roundtrip, seal, open_)


def fernet(data: Dataset) -> Contender:
    fernets = [Fernet(Fernet.generate_key()) for _ in data.row_ids]

    def prepare(value: FieldValue) -> tuple[Fernet, bytes]:
        return fernets[value.patient], value.plaintext

    def roundtrip(items: Sequence[tuple[Fernet, bytes]]) -> None:
        for box, plaintext in items:
            box.decrypt(box.encrypt(plaintext))

    def seal(item: tuple[Fernet, bytes]) -> bytes:
        box, plaintext = item
        return box.encrypt(plaintext)

    def open_(item: tuple[Fernet, bytes], token: bytes) -> bytes:
        box, _ = item
        return box.decrypt(token)

    return Contender("Fernet", prepare, roundtrip, seal, open_)


def string_encrypted_type(data: Dataset) -> Contender:
    # One type per column with its own secret, as a model would declare them.
    dialect = sqlite.dialect()
    columns = {value.column for value in data.records[0]} if data.records else set()
    types = {
        column: StringEncryptedType(String, key=secrets.token_hex(32), engine=AesGcmEngine)
        for column in columns
    }

    def prepare(value: FieldValue) -> tuple[StringEncryptedType, str]:
        return types[value.column], value.text

    def roundtrip(items: Sequence[tuple[StringEncryptedType, str]]) -> None:
        for kind, text in items:
            kind.process_result_value(kind.process_bind_param(text, dialect), dialect)

    def seal(item: tuple[StringEncryptedType, str]) -> str:
        kind, text = item
        return str(kind.process_bind_param(text, dialect))

    def open_(item: tuple[StringEncryptedType, str], stored: str) -> str:
        kind, _ = item
        return str(kind.process_result_value(stored, dialect))

    return Contender("StringEncryptedType + AesGcmEngine", prepare, roundtrip, seal, open_)


@dataclass(frozen=True)
class Row:
    name: str
    field: Timing
    record: Timing
    stored: float  # mean bytes stored per field


def _checked_size(contender: Contender, values: list[FieldValue]) -> float:
    """Mean stored size; fails if any value does not come back as it went in."""
    total = 0
    for value in values:
        item = contender.prepare(value)
        stored = contender.seal(item)
        opened = contender.open(item, stored)
        expected = value.text if isinstance(opened, str) else value.plaintext
        if opened != expected:
            raise AssertionError(f"{contender.name} did not round-trip {value.column}")
        total += len(stored)
    return total / max(len(values), 1)


def _per_record(
    roundtrip: Callable[[Sequence[Any]], None], records: list[list[Any]]
) -> Callable[[], None]:
    def run() -> None:
        for record in records:
            roundtrip(record)

    return run


def _per_field(roundtrip: Callable[[Sequence[Any]], None], items: list[Any]) -> Callable[[], None]:
    return lambda: roundtrip(items)


@dataclass(frozen=True)
class IndexRow:
    name: str
    timing: Timing


def _blind_index_cases(data: Dataset, vault: Vault) -> tuple[list[Case], list[str]]:
    pairs = [(v.column, v.text) for v in data.values if v.column in BITS]
    keys = {field: os.urandom(32) for field in BITS}

    # hmac.new(...).digest(), as the vault does: the one-shot hmac.digest() measured
    # slower, not faster, with the OpenSSL this benchmark was first run on.
    def floor() -> None:
        for field, value in pairs:
            digest = hmac.new(keys[field], value.encode("utf-8"), sha256).digest()
            int.from_bytes(digest[:4], "big") >> (32 - BITS[field])

    def vault_index() -> None:
        for field, value in pairs:
            vault.blind_index(field, value)

    names = ["HMAC-SHA256, truncated (floor)", "Vault.blind_index"]
    return [
        Case(names[0], floor, len(pairs)),
        Case(names[1], vault_index, len(pairs)),
    ], names


@dataclass(frozen=True)
class PaddingRow:
    column: str
    padding: Padding
    v1_seal: Timing
    v2_seal: Timing
    v1_open: Timing
    v2_open: Timing
    v1_stored: float  # mean bytes stored per value
    v2_stored: float
    v2_lengths: int  # distinct stored lengths in format 2


def _padding_cases(data: Dataset, vault: Vault) -> tuple[list[Case], list[str]]:
    """Per column: seal and open in format 1 and in format 2 with its buckets."""
    keys = [vault.new_data_key(row_id)[1] for row_id in data.row_ids]
    columns = [value.column for value in data.records[0]] if data.records else []
    cases: list[Case] = []
    for column in columns:
        values = [v for v in data.values if v.column == column]
        items = [(keys[v.patient], v.plaintext, v.context, v.padding) for v in values]
        v1_blobs = [(k, seal_v1(k, p, c), c) for k, p, c, _ in items]
        v2_blobs = [(k, seal(k, p, c, pad), c) for k, p, c, pad in items]

        def v1_seal(items: list[tuple[DataKey, bytes, FieldContext, Padding]] = items) -> None:
            for key, plaintext, context, _ in items:
                seal_v1(key, plaintext, context)

        def v2_seal(items: list[tuple[DataKey, bytes, FieldContext, Padding]] = items) -> None:
            for key, plaintext, context, padding in items:
                seal(key, plaintext, context, padding)

        def opener(blobs: list[tuple[DataKey, bytes, FieldContext]]) -> Callable[[], None]:
            def run() -> None:
                for key, blob, context in blobs:
                    open_sealed(key, blob, context)

            return run

        cases += [
            Case(f"pad/{column}/v1-seal", v1_seal, len(items)),
            Case(f"pad/{column}/v2-seal", v2_seal, len(items)),
            Case(f"pad/{column}/v1-open", opener(v1_blobs), len(items)),
            Case(f"pad/{column}/v2-open", opener(v2_blobs), len(items)),
        ]
    return cases, columns


def _padding_rows(
    data: Dataset, vault: Vault, columns: list[str], timings: dict[str, Timing]
) -> list[PaddingRow]:
    key = vault.new_data_key(uuid.uuid4())[1]
    rows = []
    for column in columns:
        values = [v for v in data.values if v.column == column]
        v1 = [len(seal_v1(key, v.plaintext, v.context)) for v in values]
        v2 = [len(seal(key, v.plaintext, v.context, v.padding)) for v in values]
        for value in values:  # the benchmark measures values that come back whole
            blob = seal(key, value.plaintext, value.context, value.padding)
            if open_sealed(key, blob, value.context) != value.plaintext:
                raise AssertionError(f"format 2 did not round-trip {column}")
        rows.append(
            PaddingRow(
                column,
                values[0].padding,
                timings[f"pad/{column}/v1-seal"],
                timings[f"pad/{column}/v2-seal"],
                timings[f"pad/{column}/v1-open"],
                timings[f"pad/{column}/v2-open"],
                sum(v1) / len(v1),
                sum(v2) / len(v2),
                len(set(v2)),
            )
        )
    return rows


@dataclass(frozen=True)
class Result:
    data: Dataset
    rows: list[Row]
    index: list[IndexRow]
    index_values: int
    padding: list[PaddingRow]


def run(*, patients: int, seed: int, repeat: int) -> Result:
    """Measure every contender on one synthetic dataset."""
    data = synthetic_dataset(patients=patients, seed=seed)
    values = data.values
    with tempfile.TemporaryDirectory() as workdir:
        vault = Vault(FileKeyProvider.create(Path(workdir) / "root.key"))
        try:
            contenders = [
                raw_aesgcm(data),
                vault_fields(data, vault),
                fernet(data),
                string_encrypted_type(data),
            ]
            stored = {c.name: _checked_size(c, values) for c in contenders}
            cases: list[Case] = []
            for c in contenders:
                items = [c.prepare(v) for v in values]
                records = [[c.prepare(v) for v in record] for record in data.records]
                cases.append(Case(f"{c.name}/field", _per_field(c.roundtrip, items), len(items)))
                cases.append(
                    Case(f"{c.name}/record", _per_record(c.roundtrip, records), len(records))
                )
            index_cases, index_names = _blind_index_cases(data, vault)
            padding_cases, padded_columns = _padding_cases(data, vault)
            timings = measure(cases + index_cases + padding_cases, repeat=repeat)
            padding = _padding_rows(data, vault, padded_columns, timings)
        finally:
            vault.close()
    rows = [
        Row(c.name, timings[f"{c.name}/field"], timings[f"{c.name}/record"], stored[c.name])
        for c in contenders
    ]
    index = [IndexRow(name, timings[name]) for name in index_names]
    return Result(data, rows, index, index_cases[0].ops, padding)


def _ratio(value: float, floor: float) -> str:
    return f"{value / floor:.2f}×"


def report(result: Result) -> str:
    """The "Field encryption" section, in Markdown."""
    data = result.data
    values = data.values
    sizes = [len(v.plaintext) for v in values]
    floor = result.rows[0]
    lines = [
        "## Field encryption",
        "",
        f"Data: {len(data.records)} synthetic patients (seed {data.seed}), "
        f"{len(values)} field values, plaintext {min(sizes)} to {max(sizes)} bytes "
        f"(mean {sum(sizes) / len(sizes):.1f}). Each operation encrypts then decrypts; "
        "times are the median and the best of the repetitions.",
        "",
        "| Contender | Per field, median (ns) | Per field, best (ns) | × floor "
        "| Per record, median (µs) | Per record, best (µs) | × floor | Stored per field (bytes) |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in result.rows:
        lines.append(
            f"| {row.name} | {row.field.median:,.0f} | {row.field.best:,.0f} "
            f"| {_ratio(row.field.median, floor.field.median)} "
            f"| {row.record.median / 1000:,.1f} | {row.record.best / 1000:,.1f} "
            f"| {_ratio(row.record.median, floor.record.median)} | {row.stored:.1f} |"
        )
    index_floor = result.index[0].timing
    lines += [
        "",
        f"Blind index, over the {result.index_values} email, phone and NIR values:",
        "",
        "| Computation | Median (ns) | Best (ns) | × floor |",
        "|---|--:|--:|--:|",
    ]
    for entry in result.index:
        lines.append(
            f"| {entry.name} | {entry.timing.median:,.0f} | {entry.timing.best:,.0f} "
            f"| {_ratio(entry.timing.median, index_floor.median)} |"
        )
    lines += ["", _verdict(result.rows), "", *_padding_report(result.padding)]
    return "\n".join(lines) + "\n"


def _buckets(padding: Padding) -> str:
    if padding.doubling_until:
        until = padding.doubling_until
        return f"{padding.step} doubling to {until}, then ×{until}"
    return f"×{padding.step}"


def _padding_report(rows: list[PaddingRow]) -> list[str]:
    lines = [
        "### Padding",
        "",
        "Per field, sealed format 2 (padded to the field's buckets) against format 1 "
        "(unpadded), in the same run: median ns per value, seal and open measured apart; "
        "stored bytes are the mean per value, and how many distinct lengths format 2 "
        "leaves over all the values of the field.",
        "",
        "| Field | Buckets (bytes) | Seal v1 | Seal v2 | × v1 | Open v1 | Open v2 | × v1 "
        "| Stored v1 | Stored v2 | Lengths v2 |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in rows:
        lines.append(
            f"| {row.column} | {_buckets(row.padding)} "
            f"| {row.v1_seal.median:,.0f} | {row.v2_seal.median:,.0f} "
            f"| {_ratio(row.v2_seal.median, row.v1_seal.median)} "
            f"| {row.v1_open.median:,.0f} | {row.v2_open.median:,.0f} "
            f"| {_ratio(row.v2_open.median, row.v1_open.median)} "
            f"| {row.v1_stored:.1f} | {row.v2_stored:.1f} | {row.v2_lengths} |"
        )
    return lines


def _verdict(rows: list[Row]) -> str:
    floor, vault, *peers = rows
    ratio = vault.field.median / floor.field.median
    below = all(vault.field.median < peer.field.median for peer in peers)
    met = ratio <= TARGET_RATIO and below
    return (
        f"Target (vault per field within {TARGET_RATIO}× of the floor and below both peers): "
        f"{'met' if met else 'NOT met'}: {ratio:.2f}× the floor, "
        f"{'below' if below else 'not below'} both peers."
    )
