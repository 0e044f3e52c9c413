"""One exception type per discovery outcome a caller must tell apart.

Callers branch on the type; the message is for the operator.
"""
from __future__ import annotations


class MultipathError(Exception):
    """Base class of everything storage.multipath raises."""


class InvalidWwid(MultipathError, ValueError):
    """A text is not any known spelling of a LUN's WWID."""


class DiscoveryUnavailable(MultipathError):
    """A discovery source cannot be used on this host (not mounted, not installed, not
    running). Another source may still work."""


class SysfsUnavailable(DiscoveryUnavailable):
    """The sysfs root has no `block/` directory."""


class UdevUnavailable(DiscoveryUnavailable):
    """pyudev/libudev missing, or no udev database (udevd never ran here)."""


class MultipathToolsMissing(DiscoveryUnavailable):
    """The multipathd/multipath binary is not installed (Debian: multipath-tools)."""


class MultipathdNotRunning(DiscoveryUnavailable):
    """Nothing listens on multipathd's control socket."""


class MultipathdFailed(MultipathError):
    """multipathd answered, but the command failed (reply 'fail', exit status != 0)."""


class MultipathdTimeout(MultipathError):
    """The command did not finish before its deadline."""


class MultipathOutputError(MultipathError):
    """Output of multipathd or multipath that does not have the documented shape."""


class UnsupportedJsonVersion(MultipathOutputError):
    """multipathd's JSON has a major_version this code does not know."""


class LunResolutionError(MultipathError):
    """A configured LUN could not be mapped to devices on this host."""


class NotAnSgLun(LunResolutionError):
    """The LUN does not use the sg transport, or names neither a wwid nor an alias."""


class UnknownLun(LunResolutionError):
    """No map and no SCSI disk on this host has the configured wwid/alias."""

    def __init__(self, lun: str, wwid: str | None, alias: str | None) -> None:
        wanted = " and ".join(part for part in (
            f"wwid {wwid}" if wwid else "", f"alias {alias}" if alias else "") if part)
        super().__init__(f"LUN {lun!r}: no multipath map or SCSI disk with {wanted} on this host")
        self.lun = lun
        self.wwid = wwid
        self.alias = alias


class AmbiguousLun(LunResolutionError):
    """More than one map matches the configured WWID (only possible with an untyped
    `0x<hex>` spelling that fits both an NAA and an EUI-64 map)."""


class AliasMismatch(LunResolutionError):
    """The configured alias names a map whose WWID is not the configured one."""

    def __init__(self, lun: str, alias: str, configured_wwid: str, actual_wwid: str) -> None:
        super().__init__(f"LUN {lun!r}: alias {alias!r} is the map of WWID {actual_wwid}, "
                         f"but the configuration says WWID {configured_wwid}")
        self.lun = lun
        self.alias = alias
        self.configured_wwid = configured_wwid
        self.actual_wwid = actual_wwid
