"""Wiring: settings → vault → engine → session factory. Used by the app and the CLI."""

from __future__ import annotations

from dataclasses import dataclass

from hippocrate.config import Settings
from hippocrate.db.engine import SessionFactory, make_engine
from hippocrate.db.migrate import current_revision
from hippocrate.guard.service import Guard, open_state
from hippocrate.keyring.service import KEYRING
from hippocrate.vault.factory import open_vault


class NotInitialised(RuntimeError):
    """The database has no schema yet: ``hippocrate init`` was not run."""


@dataclass
class Runtime:
    settings: Settings
    sessions: SessionFactory
    guard: Guard | None = None

    def __post_init__(self) -> None:
        if self.guard is None:
            state = open_state(self.settings, self.sessions)
            self.guard = Guard(self.settings, self.sessions.vault, state)

    @classmethod
    def open(cls, settings: Settings, *, require_schema: bool = True) -> Runtime:
        """Open the key provider and the database; fail closed on any problem."""
        vault = open_vault(settings)
        try:
            engine = make_engine(settings.resolved_database_url)
            if require_schema and current_revision(engine) is None:
                raise NotInitialised("the database has no schema; run 'hippocrate init' first")
        except BaseException:
            vault.close()
            raise
        return cls(settings, SessionFactory(engine, vault, KEYRING))

    def close(self) -> None:
        self.sessions.engine.dispose()
        self.sessions.vault.close()
