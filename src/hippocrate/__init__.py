"""Hippocrate: teleconsultation whose database dump exposes nothing usable."""

__version__ = "0.1.0"
