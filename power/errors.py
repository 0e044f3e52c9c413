"""What can go wrong when talking to a BMC, as types a caller branches on.

Every type derives from `BmcError`, so `except BmcError` catches any BMC failure; callers
that care tell the cases apart by type, never by message.
"""
from __future__ import annotations


class BmcError(Exception):
    """The BMC did not do what was asked (base class, and every case not named below)."""


class BmcUnreachable(BmcError):
    """The BMC never answered, or stopped answering and the IPMI library gave up."""


class BmcAuthError(BmcError):
    """The BMC refused the credentials: unknown user, wrong password or Kg, or a privilege
    level the user may not have (at login or for the command)."""


class BmcTimeout(BmcError):
    """The call's deadline passed and its worker process was killed.

    `answered` says whether the BMC had answered anything before that (a mute or absent BMC
    did not); `logged_in` whether an IPMI session had been established.
    """

    def __init__(self, message: str, answered: bool = False, logged_in: bool = False) -> None:
        super().__init__(message)
        self.answered = answered
        self.logged_in = logged_in


class BmcCommandRejected(BmcError):
    """The BMC answered the command with a non-zero IPMI completion code."""

    def __init__(self, message: str, completion_code: int) -> None:
        super().__init__(message)
        self.completion_code = completion_code


class IpmiSettingsError(ValueError):
    """IPMI settings that cannot work (unknown privilege, unsupported cipher suite, ...)."""
