"""The keyring's typed refusals."""

from __future__ import annotations


class RetireRefused(Exception):
    """A root key version cannot be retired now: something still depends on it, or it
    is the current one. The message says what, and what to run first."""
