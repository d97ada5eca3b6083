"""Numbered SQL migrations, tracked in `PRAGMA user_version`.

The files live in the repository's top-level `migrations/` folder. An installed wheel (and so the
Docker image) carries them as `bot/_migrations`; a checkout reads them from the repository.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


class MigrationError(Exception):
    """The migrations cannot be applied; the message says why in one sentence."""


def _migrations_dir() -> Traversable:
    packaged = resources.files("bot") / "_migrations"
    if packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parents[2] / "migrations"
    if checkout.is_dir():
        return checkout
    raise MigrationError("the migrations folder was not found (broken installation)")


def load_migrations(folder: Traversable | None = None) -> list[Migration]:
    """Every migration file, in order. Numbers must run 1, 2, 3… without gaps."""
    folder = folder if folder is not None else _migrations_dir()
    found = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda migration: migration.version)
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise MigrationError(
                f"migration {migration.name} is out of sequence (expected number {expected:04d})"
            )
    return found
