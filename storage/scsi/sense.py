"""Sense data: fixed (0x70/0x71) and descriptor (0x72/0x73) formats, decoded (SPC-4 4.5)."""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class SenseKey(IntEnum):
    NO_SENSE = 0x0
    RECOVERED_ERROR = 0x1
    NOT_READY = 0x2
    MEDIUM_ERROR = 0x3
    HARDWARE_ERROR = 0x4
    ILLEGAL_REQUEST = 0x5
    UNIT_ATTENTION = 0x6
    DATA_PROTECT = 0x7
    BLANK_CHECK = 0x8
    VENDOR_SPECIFIC = 0x9
    COPY_ABORTED = 0xA
    ABORTED_COMMAND = 0xB
    VOLUME_OVERFLOW = 0xD
    MISCOMPARE = 0xE
    COMPLETED = 0xF


# (ASC, ASCQ) -> name, for the codes stonewall acts on or reports.
_ASC_NAMES: dict[tuple[int, int], str] = {
    (0x04, 0x00): "LOGICAL UNIT NOT READY, CAUSE NOT REPORTABLE",
    (0x04, 0x01): "LOGICAL UNIT IS IN PROCESS OF BECOMING READY",
    (0x04, 0x02): "LOGICAL UNIT NOT READY, INITIALIZING COMMAND REQUIRED",
    (0x04, 0x0A): "LOGICAL UNIT NOT ACCESSIBLE, ASYMMETRIC ACCESS STATE TRANSITION",
    (0x04, 0x0B): "LOGICAL UNIT NOT ACCESSIBLE, TARGET PORT IN STANDBY STATE",
    (0x04, 0x0C): "LOGICAL UNIT NOT ACCESSIBLE, TARGET PORT IN UNAVAILABLE STATE",
    (0x20, 0x00): "INVALID COMMAND OPERATION CODE",
    (0x21, 0x00): "LOGICAL BLOCK ADDRESS OUT OF RANGE",
    (0x24, 0x00): "INVALID FIELD IN CDB",
    (0x25, 0x00): "LOGICAL UNIT NOT SUPPORTED",
    (0x26, 0x00): "INVALID FIELD IN PARAMETER LIST",
    (0x29, 0x00): "POWER ON, RESET, OR BUS DEVICE RESET OCCURRED",
    (0x29, 0x01): "POWER ON OCCURRED",
    (0x29, 0x02): "SCSI BUS RESET OCCURRED",
    (0x29, 0x03): "BUS DEVICE RESET FUNCTION OCCURRED",
    (0x29, 0x04): "DEVICE INTERNAL RESET",
    (0x29, 0x07): "I_T NEXUS LOSS OCCURRED",
    (0x2A, 0x01): "MODE PARAMETERS CHANGED",
    (0x2A, 0x03): "RESERVATIONS PREEMPTED",
    (0x2A, 0x04): "RESERVATIONS RELEASED",
    (0x2A, 0x05): "REGISTRATIONS PREEMPTED",
    (0x2A, 0x06): "ASYMMETRIC ACCESS STATE CHANGED",
    (0x2A, 0x09): "CAPACITY DATA HAS CHANGED",
    (0x3F, 0x0E): "REPORTED LUNS DATA HAS CHANGED",
    (0x55, 0x03): "INSUFFICIENT RESOURCES",
}


@dataclass(frozen=True)
class Sense:
    """Decoded sense data; `raw` keeps the bytes for logs."""

    key: SenseKey
    asc: int
    ascq: int
    raw: bytes = b""
    descriptor_format: bool = False

    @property
    def name(self) -> str:
        """SPC-4's name for ASC/ASCQ, or a generic one (29/xx has a family name)."""
        known = _ASC_NAMES.get((self.asc, self.ascq))
        if known:
            return known
        if self.asc == 0x29:
            return "POWER ON, RESET, OR BUS DEVICE RESET OCCURRED"
        return f"ASC/ASCQ {self.asc:02X}/{self.ascq:02X}"

    def is_(self, key: SenseKey, asc: int, ascq: int | None = None) -> bool:
        """True for this key and ASC (and ASCQ, unless None)."""
        return self.key == key and self.asc == asc and (ascq is None or self.ascq == ascq)

    def __str__(self) -> str:
        return f"{self.key.name} {self.asc:02X}/{self.ascq:02X} {self.name}"


class SenseFormatError(ValueError):
    """The bytes are not sense data in a format SPC-4 defines."""


def decode_sense(raw: bytes) -> Sense:
    """Decode fixed or descriptor format sense data."""
    if len(raw) < 2:
        raise SenseFormatError(f"sense data too short ({len(raw)} bytes)")
    response_code = raw[0] & 0x7F
    if response_code in (0x70, 0x71):
        if len(raw) < 14:
            # Some targets stop after the additional sense length; ASC/ASCQ then read as 0.
            padded = raw.ljust(14, b"\0")
        else:
            padded = raw
        return Sense(SenseKey(padded[2] & 0x0F), padded[12], padded[13], bytes(raw), False)
    if response_code in (0x72, 0x73):
        if len(raw) < 4:
            raise SenseFormatError(f"descriptor sense too short ({len(raw)} bytes)")
        return Sense(SenseKey(raw[1] & 0x0F), raw[2], raw[3], bytes(raw), True)
    raise SenseFormatError(f"unknown sense response code 0x{response_code:02x}")


def encode_fixed_sense(key: SenseKey, asc: int, ascq: int) -> bytes:
    """Fixed-format sense data (18 bytes), current error."""
    data = bytearray(18)
    data[0] = 0x70
    data[2] = int(key) & 0x0F
    data[7] = 10  # additional sense length
    data[12] = asc
    data[13] = ascq
    return bytes(data)
