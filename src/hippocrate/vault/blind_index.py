"""Blind indexes: keyed, truncated HMAC-SHA256 over a normalised value.

Each indexed field has its own key, derived by the key provider from its index key
(so an HSM never releases the index key itself). The output is truncated to
``BITS[field]`` bits: enough that a lookup returns few false candidates at the scale
the platform is built for, few enough that an index value is shared by many possible
inputs even if the derived key leaked. docs/CRYPTO.md gives the arithmetic.
Candidates are always confirmed by decrypting the field.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from hashlib import sha256

INDEX_KEY_PURPOSE = b"hippocrate.blind-index.v1:"

#: Bits kept per indexed field. Changing one requires recomputing that index.
BITS: dict[str, int] = {
    "email": 24,  # the login lookup: few false candidates even at 10 million patients
    "phone": 20,  # with the key, one index value still stands for ~190 French mobiles
    "nir": 20,  # duplicate checks only; with the key, ~1 NIR per value for one birth cohort
    "rpps": 24,  # practitioners (public directory numbers): uniqueness checks
    "client": 32,  # sign-in throttling per client address: merging two addresses is wrong
}


class BlindIndexer:
    """Computes blind indexes with per-field keys obtained once from a provider."""

    def __init__(self, derive: Callable[[bytes], bytes]) -> None:
        self._derive = derive
        self._keys: dict[str, bytes] = {}

    def _key(self, field: str) -> bytes:
        key = self._keys.get(field)
        if key is None:
            if field not in BITS:
                raise KeyError(f"no blind index is defined for field {field!r}")
            key = self._derive(INDEX_KEY_PURPOSE + field.encode("ascii"))
            self._keys[field] = key
        return key

    def compute(self, field: str, normalised: str) -> int:
        """The blind index of ``normalised`` (already canonical) for ``field``."""
        digest = hmac.new(self._key(field), normalised.encode("utf-8"), sha256).digest()
        bits = BITS[field]
        return int.from_bytes(digest[:4], "big") >> (32 - bits)

    def __repr__(self) -> str:
        return f"BlindIndexer(fields={sorted(BITS)}, keys=<redacted>)"
