"""Stored (wrapped) data keys: creation, lookup, rotation and crypto-shredding."""
