"""The errors `Client.start` and friends raise."""

from __future__ import annotations


class DialsError(Exception):
    """Anything the dials client refuses or cannot do."""


class SettingError(DialsError):
    """A client setting is missing or wrong; `setting` names it."""

    def __init__(self, setting: str, reason: str) -> None:
        super().__init__(f"dials client setting {setting}: {reason}")
        self.setting = setting
        self.reason = reason


class NoConfigError(DialsError):
    """Neither the manager, nor the last-known-good file, nor (if allowed) the defaults gave a
    config; the message says what was tried and why each failed."""

    def __init__(self, service: str, manager: str, lkg: str) -> None:
        super().__init__(
            f"no config for {service}: {manager}; {lkg}; and starting from the schema "
            "defaults is not allowed (allow_defaults=True)"
        )
        self.service = service
        self.manager = manager
        self.lkg = lkg


class ClosedError(DialsError):
    """The client was closed."""
