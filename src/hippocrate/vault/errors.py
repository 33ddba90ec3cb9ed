"""The vault's exceptions.

Every failure to open a sealed value is a :class:`DecryptionError`: the caller never
gets ciphertext back as if it were data, nor partial plaintext.
"""

from __future__ import annotations


class VaultError(Exception):
    """Base class of everything the vault raises."""


class KeyProviderError(VaultError):
    """The key provider cannot be used (missing, unreadable, wrong PIN, bad module).

    Raised at start: configuration fails closed, never falls back to another provider.
    """


class DecryptionError(VaultError):
    """A sealed value or a wrapped key could not be opened.

    The message says why (wrong row or column, tampered bytes, unknown format or key
    version, destroyed key) and never contains key material or plaintext.
    """


class KeyDestroyed(DecryptionError):
    """The data key was destroyed (crypto-shredding): the data is gone for good."""


class UnknownKeyVersion(DecryptionError):
    """The value names a key version the vault does not hold."""


class UnwrapBudgetExceeded(VaultError):
    """The process unwrapped as many distinct data keys this minute as it may: someone
    running code on the server is slowed down, whatever the access path."""
