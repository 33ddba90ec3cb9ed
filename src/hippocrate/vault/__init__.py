"""The vault: the only package that touches cryptographic primitives.

Public recipes: :class:`Vault` (seal, open, blind index, wrap and unwrap data keys),
the key providers, and the exceptions. See docs/CRYPTO.md.
"""

from hippocrate.vault.core import Vault
from hippocrate.vault.errors import (
    DecryptionError,
    KeyDestroyed,
    KeyProviderError,
    UnknownKeyVersion,
    UnwrapBudgetExceeded,
    VaultError,
)
from hippocrate.vault.fields import (
    FORMAT_V1,
    FORMAT_V2,
    FieldContext,
    Padding,
    peek_format,
    peek_key_version,
)
from hippocrate.vault.fields import seal as seal_field
from hippocrate.vault.keys import DataKey, WrappedKey

__all__ = [
    "FORMAT_V1",
    "FORMAT_V2",
    "DataKey",
    "DecryptionError",
    "FieldContext",
    "KeyDestroyed",
    "KeyProviderError",
    "Padding",
    "UnknownKeyVersion",
    "UnwrapBudgetExceeded",
    "Vault",
    "VaultError",
    "WrappedKey",
    "peek_format",
    "peek_key_version",
    "seal_field",
]
