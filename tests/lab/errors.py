"""What the lab fabric (tests.lab.fabric) raises."""

from __future__ import annotations


class FabricError(RuntimeError):
    """The lab could not do what was asked."""


class GuestNotFound(FabricError, LookupError):
    """No guest with this server id (never created, or deleted)."""


class MigrationError(FabricError):
    """The migration failed (profile result `error`) or was refused."""


class MigrationInProgress(MigrationError):
    """The server is already being migrated."""
