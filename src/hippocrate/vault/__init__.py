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
from hippocrate.vault.fields import FieldContext, peek_key_version
from hippocrate.vault.keys import DataKey, WrappedKey

__all__ = [
    "DataKey",
    "DecryptionError",
    "FieldContext",
    "KeyDestroyed",
    "KeyProviderError",
    "UnknownKeyVersion",
    "UnwrapBudgetExceeded",
    "Vault",
    "VaultError",
    "WrappedKey",
    "peek_key_version",
]
