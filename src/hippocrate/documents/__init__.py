"""Issued documents: rendering, signing, verifying."""
