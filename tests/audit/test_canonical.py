"""The fast canonical encoding (orjson) is the reference encoding byte for byte, over
every kind of value an event's fields can hold, so the chain already stored verifies
unchanged; where orjson would differ, the reference is used."""

from __future__ import annotations

import enum
import json
import math
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hippocrate.audit.chain import (
    FIELDS,
    canonical,
    fast_canonical,
    orjson_safe,
    unsafe_fast_canonical,
)
from hippocrate.tags import Category, Tag

# Every character: ASCII (controls, DEL), Latin, CJK, emoji beyond the BMP, lone
# surrogates (the reference escapes them, orjson refuses them).
text = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=12)
ascii_text = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=127), max_size=12)
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
)
scalars = st.one_of(st.none(), text, ascii_text, numbers, st.uuids())
nested = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(text, ascii_text), inner, max_size=4),
    ),
    max_leaves=12,
)
moments = st.datetimes(
    min_value=datetime(1000, 1, 1),  # noqa: DTZ001 (hypothesis wants naive bounds, adds the zones)
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5))]),
)
events = st.fixed_dictionaries(
    {
        "seq": st.integers(min_value=1, max_value=2**63 - 1),
        "at": moments,
        "actor_account_id": st.one_of(st.none(), st.uuids()),
        "actor_role": st.one_of(ascii_text, text),
        "action": st.one_of(ascii_text, text),
        "patient_id": st.one_of(st.none(), st.uuids()),
        "resources": st.lists(st.one_of(ascii_text, nested), max_size=4),
        "categories": st.lists(st.one_of(ascii_text, text), max_size=3),
        "purpose": st.one_of(st.none(), ascii_text, text),
        "outcome": st.one_of(ascii_text, numbers),
        "request_id": st.one_of(st.none(), ascii_text, text, nested),
    }
)


@settings(max_examples=3000, deadline=None)
@given(events)
def test_the_fast_encoding_is_the_reference_byte_for_byte(event: dict[str, Any]) -> None:
    assert encoded(fast_canonical, event) == encoded(canonical, event)


def encoded(encode: Callable[[dict[str, Any]], bytes], event: dict[str, Any]) -> bytes | str:
    """The bytes, or the refusal (a UUID nested in a list is no JSON value for either)."""
    try:
        return encode(event)
    except (TypeError, ValueError) as exc:
        return type(exc).__name__


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.one_of(ascii_text, st.integers(-(2**65), 2**65), st.none()), max_size=11))
def test_orjson_is_taken_for_ascii_text_and_integers(values: list[Any]) -> None:
    fast = unsafe_fast_canonical(values)
    reference = json.dumps(values, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    declined = any(isinstance(v, int) and not -(2**63) <= v < 2**64 for v in values) or any(
        isinstance(v, str) and "\x7f" in v for v in values
    )
    assert fast == (None if declined else reference)


def event(**values: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "seq": 7,
        "at": datetime(2026, 11, 1, 9, 0, 0, 1234, tzinfo=UTC),
        "actor_account_id": uuid.UUID(int=1),
        "actor_role": "practitioner",
        "action": Tag("consultation:message:read"),
        "patient_id": None,
        "resources": [f"message:{uuid.UUID(int=2)}"],
        "categories": [Category.HEALTH],
        "purpose": "care",
        "outcome": "allowed",
        "request_id": None,
    }
    return {**base, **values}


def test_an_event_as_the_app_writes_it_goes_through_orjson() -> None:
    values = [event()[name] for name in FIELDS]
    plain = [str(v) if isinstance(v, uuid.UUID) else v for v in values]
    plain[1] = "2026-11-01T09:00:00.001234Z"
    assert orjson_safe(plain)
    assert unsafe_fast_canonical(plain) == canonical(event())
    assert canonical(event()) == (
        b'[7,"2026-11-01T09:00:00.001234Z","00000000-0000-0000-0000-000000000001",'
        b'"practitioner","consultation:message:read",null,'
        b'["message:00000000-0000-0000-0000-000000000002"],["health"],"care","allowed",null]'
    )


class Level(enum.IntEnum):
    HIGH = 3


def test_where_orjson_differs_the_reference_is_used() -> None:
    cases = {
        "unicode": event(request_id="réf-été-🩺"),
        "a lone surrogate": event(request_id="\ud800"),
        "DEL": event(request_id="a\x7fb"),
        "a float": event(resources=[1e-7]),
        "NaN, which orjson writes as null": event(resources=[math.nan]),
        "an infinity": event(outcome=math.inf),
        "an integer beyond 64 bits": event(resources=[2**64]),
        "an IntEnum": event(resources=[Level.HIGH]),
        "a dict with an integer key": event(resources=[{1: "a"}]),
    }
    for name, case in cases.items():
        assert fast_canonical(case) == canonical(case), name
    assert canonical(event(resources=[math.nan])) != canonical(event(resources=[None]))
