"""Shared helpers for CLI commands: settings and an open runtime."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from hippocrate.audit.recorder import Actor, attach
from hippocrate.config import Settings
from hippocrate.runtime import Runtime


def settings() -> Settings:
    return Settings()


@contextmanager
def runtime(*, require_schema: bool = True) -> Iterator[Runtime]:
    opened = Runtime.open(settings(), require_schema=require_schema)
    # Every session of a command records what it touches, as the operator.
    opened.sessions.on_open.append(
        lambda session: attach(session, Actor(role="operator", purpose="operations"))
    )
    try:
        yield opened
    finally:
        opened.close()
