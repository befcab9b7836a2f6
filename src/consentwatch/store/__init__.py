"""Persistence: TinyDB over an atomic JSON storage (temp file, fsync, os.replace), one writer per file."""

from .atomic import AtomicJSONStorage, open_db
from .state import StateStore, Event

__all__ = ["AtomicJSONStorage", "open_db", "StateStore", "Event"]
