"""Shared helpers for CLI commands: settings and an open runtime."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from hippocrate.config import Settings
from hippocrate.runtime import Runtime


def settings() -> Settings:
    return Settings()


@contextmanager
def runtime(*, require_schema: bool = True) -> Iterator[Runtime]:
    opened = Runtime.open(settings(), require_schema=require_schema)
    try:
        yield opened
    finally:
        opened.close()
