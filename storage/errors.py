"""Refusals the record rules raise; handlers turn `code` into a translated sentence."""

from __future__ import annotations


class Refused(Exception):
    """The actor may not do this (role, team, ownership or record state)."""

    def __init__(self, code: str, **details: object) -> None:
        super().__init__(code)
        self.code = code
        self.details = details


class NotFound(Refused):
    """The record does not exist or is not visible to the actor (indistinguishable on purpose)."""

    def __init__(self, code: str = "not_found") -> None:
        super().__init__(code)
