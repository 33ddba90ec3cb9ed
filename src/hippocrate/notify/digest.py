"""The keyed digest of an email's verification code, which the public check looks up.

HMAC-SHA256 of the normalised code (``service.normalise_code``: 8 characters of the
code alphabet) under a key the key provider derives from its index key for this purpose
alone (an HSM never releases the index key itself). Guaranteed: without the provider, a
copy of the database cannot tell whether a code was sent (an unkeyed hash of a 40-bit
code is reversed by trying every code); the full 32 bytes are kept, so two codes never
share a digest in practice and a lookup needs no confirmation by decryption. Not
guaranteed: secrecy against someone who holds both the database and the derived key
(every code can then be tried, as for any keyed index).
"""

from __future__ import annotations

import hashlib
import hmac

from sqlalchemy.orm import Session

from hippocrate.db.sealed import vault_of

#: What the derived key is for (the provider derives one key per purpose).
CODE_PURPOSE = b"hippocrate.message-code.v1"


def code_key(session: Session) -> bytes:
    """The key of the code digests, derived by the key provider of ``session``'s vault."""
    return vault_of(session).provider.derive_index_key(CODE_PURPOSE)


def code_digest(key: bytes, normalised: str) -> bytes:
    """The digest of ``normalised`` (a code as :func:`normalise_code` returns it)."""
    return hmac.new(key, normalised.encode("ascii"), hashlib.sha256).digest()
