"""What sg_persist (sg3_utils 1.46) and mpathpersist print, parsed into the typed values of
`responses`. Pure functions: text in, values out.

Both tools print the same facts in two dialects (mpathpersist copied sg_persist's layout and
changed spacing: `Key=0x..` vs `Key = 0x..`, `scope: LU_SCOPE,  type: ..` vs
`scope = LU_SCOPE, type = ..`). Every line must be understood; anything else raises
SgOutputError, never a guess: a misread key list could pass a live node for a fenced one.

The stderr helpers read the diagnostics `sg_persist -vv` prints: the raw sense bytes, the
data-in byte count, and the "transport:" line that sg3_utils 1.46 prints while still
exiting 0 (measured: a host/transport failure of the SG_IO reads as success with a zeroed
answer, i.e. "NO registered reservation keys").
"""
from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from stonewall.storage.scsi.responses import (
    Capabilities, FullStatus, Keys, Registrant, Reservation, ResponseFormatError,
    parse_read_full_status)
from stonewall.storage.scsi.types import ReservationType


class SgOutputError(ResponseFormatError):
    """sg_persist/mpathpersist printed text this parser does not know."""


_LABELS = {rtype.label: rtype for rtype in ReservationType}
# Numbers are bounded and ASCII (re.ASCII): `\d` would also take other scripts' digits,
# which int() reads, and int() refuses more than 4300 decimal digits with a bare ValueError.
# The PR generation is a 32-bit counter (SPC-4 6.16.2).
_GENERATION = r"PR generation=0x(?P<generation>[0-9a-fA-F]{1,8})"
_KEYS_HEADER = re.compile(
    _GENERATION + r",\s+(?:there are NO registered reservation keys"
    r"|(?P<count>\d{1,10}) registered reservation keys?(?: follows?:|\.))", re.ASCII)
_KEY_LINE = re.compile(r"0x(?P<key>[0-9a-fA-F]{1,16})", re.ASCII)
_RESERVATION_HEADER = re.compile(
    _GENERATION + r",\s+(?:(?P<none>there is NO reservation held)|Reservation follows:)", re.ASCII)
_HOLDER_LINE = re.compile(r"Key\s*=\s*0x(?P<key>[0-9a-fA-F]{1,16})", re.ASCII)
# sg_persist: "scope: LU_SCOPE,  type: T" or "scope: 1  type: T"; mpathpersist uses " = ".
_SCOPE_TYPE_LINE = re.compile(
    r"scope(?::|\s=)\s*(?P<scope>LU_SCOPE|\d{1,10}),?\s+type(?::|\s=)\s*(?P<type>.+)", re.ASCII)
_CAPABILITY_LINE = re.compile(
    r"(?P<name>[A-Za-z ,]+?)(?:\((?P<abbr>[A-Z_]+)\))?: (?P<value>\d{1,10})", re.ASCII)
_FULL_STATUS_HEADER = re.compile(
    _GENERATION + r"(?:, Additional length=(?P<length>\d{1,10}))?", re.ASCII)
_HEX_LINE = re.compile(r"(?P<offset>[0-9a-fA-F]+)\s+(?P<bytes>(?:[0-9a-fA-F]{2}\s*)+)", re.ASCII)
_RELATIVE_PORT = re.compile(r"Relative port address: 0x(?P<port>[0-9a-fA-F]+)", re.ASCII)
_ISCSI_NAME = re.compile(r"iSCSI (?P<form>name|world wide unique port id): (?P<name>\S+)", re.ASCII)
_INQUIRY_PDT = re.compile(r"Peripheral device type: .+", re.ASCII)
_RAW_SENSE = re.compile(r"Raw sense data \(in hex\), sb_len=(?P<length>\d{1,10}).*\n"
                        r"(?P<hex>(?:[ \t]+[0-9a-fA-F]{2}(?:[ \t]+[0-9a-fA-F]{2})*\n?)+)", re.ASCII)
_DATA_IN = re.compile(
    r"pass-through requested \d{1,10} bytes \(data-in\), got(?:\s+got)? (\d{1,10}) bytes", re.ASCII)
_TRANSPORT = re.compile(r"transport: (?P<detail>(?:Host|Driver)_status=.*)", re.ASCII)


def _lines(text: str) -> list[str]:
    """Non-empty lines, stripped, with sg_persist's INQUIRY header (printed without -n:
    identification line + "Peripheral device type:") removed."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) >= 2 and _INQUIRY_PDT.fullmatch(lines[1]):
        return lines[2:]
    return lines


def _match(pattern: re.Pattern[str], line: str, what: str) -> re.Match[str]:
    found = pattern.fullmatch(line)
    if found is None:
        raise SgOutputError(f"{what}: unexpected line {line!r}")
    return found


def _first(lines: list[str], what: str) -> str:
    if not lines:
        raise SgOutputError(f"{what}: no output")
    return lines[0]


def _reservation_type(label: str, what: str) -> ReservationType:
    try:
        return _LABELS[label.strip()]
    except KeyError:
        raise SgOutputError(f"{what}: unknown reservation type {label.strip()!r}") from None


def _scope(text: str) -> int:
    return 0 if text == "LU_SCOPE" else int(text)


def parse_read_keys(text: str) -> Keys:
    """READ KEYS (`--in --read-keys`): generation and one key per registered I_T nexus."""
    what = "READ KEYS output"
    lines = _lines(text)
    header = _match(_KEYS_HEADER, _first(lines, what), what)
    keys = tuple(int(_match(_KEY_LINE, line, what)["key"], 16) for line in lines[1:])
    expected = int(header["count"] or 0)
    if len(keys) != expected:
        raise SgOutputError(f"{what}: announces {expected} keys but lists {len(keys)}")
    return Keys(int(header["generation"], 16), keys)


def parse_read_reservation(text: str) -> Reservation:
    """READ RESERVATION (`--in --read-reservation`): holder, type and scope, or none."""
    what = "READ RESERVATION output"
    lines = _lines(text)
    header = _match(_RESERVATION_HEADER, _first(lines, what), what)
    generation = int(header["generation"], 16)
    if header["none"]:
        if len(lines) > 1:
            raise SgOutputError(f"{what}: unexpected line {lines[1]!r}")
        return Reservation(generation, None, None)
    if len(lines) != 3:
        raise SgOutputError(f"{what}: expected a key line and a scope/type line")
    holder = int(_match(_HOLDER_LINE, lines[1], what)["key"], 16)
    scope_type = _match(_SCOPE_TYPE_LINE, lines[2], what)
    return Reservation(generation, holder, _reservation_type(scope_type["type"], what),
                       _scope(scope_type["scope"]))


# Field abbreviations as both tools print them; RLR_C is sg_persist's only (mpathpersist
# 0.9 does not print it), so it counts as not capable when absent.
_CAPABILITY_FLAGS = ("CRH", "SIP_C", "ATP_C", "PTPL_C", "TMV", "PTPL_A")


def parse_report_capabilities(text: str) -> Capabilities:
    """REPORT CAPABILITIES (`--in --report-capabilities`)."""
    what = "REPORT CAPABILITIES output"
    lines = _lines(text)
    if _first(lines, what) != "Report capabilities response:":
        raise SgOutputError(f"{what}: unexpected line {lines[0]!r}")
    flags: dict[str, int] = {}
    supported: set[ReservationType] = set()
    in_type_mask = False
    for line in lines[1:]:
        if line == "Support indicated in Type mask:":
            in_type_mask = True
            continue
        found = _match(_CAPABILITY_LINE, line, what)
        if in_type_mask:
            # mpathpersist prints the masked bit's value (e.g. 128), sg_persist 0 or 1.
            if int(found["value"]):
                supported.add(_reservation_type(found["name"], what))
        elif found["abbr"] or found["name"] == "Allow Commands":
            flags[found["abbr"] or "ALLOW"] = int(found["value"])
        else:
            raise SgOutputError(f"{what}: unexpected line {line!r}")
    missing = [name for name in (*_CAPABILITY_FLAGS, "ALLOW") if name not in flags]
    if missing:
        raise SgOutputError(f"{what}: missing {', '.join(missing)}")
    tmv = bool(flags["TMV"])
    return Capabilities(
        rlr_c=bool(flags.get("RLR_C", 0)), crh=bool(flags["CRH"]), sip_c=bool(flags["SIP_C"]),
        atp_c=bool(flags["ATP_C"]), ptpl_c=bool(flags["PTPL_C"]), tmv=tmv,
        allow_commands=flags["ALLOW"], ptpl_a=bool(flags["PTPL_A"]),
        types=frozenset(supported) if tmv else frozenset())


def parse_full_status_hex(text: str) -> FullStatus:
    """READ FULL STATUS as `sg_persist --hex` prints it (generation and additional length,
    then a hex dump of the descriptors), decoded with SPC-4's byte layout."""
    what = "READ FULL STATUS hex output"
    lines = _lines(text)
    header = _match(_FULL_STATUS_HEADER, _first(lines, what), what)
    if header["length"] is None:
        raise SgOutputError(f"{what}: no additional length in {lines[0]!r}")
    body = bytearray()
    for line in lines[1:]:
        found = _match(_HEX_LINE, line, what)
        if int(found["offset"], 16) != len(body):
            raise SgOutputError(f"{what}: hex dump skips to offset {found['offset']}")
        body += bytes.fromhex(found["bytes"])
    length = int(header["length"])
    if len(body) != length:
        raise SgOutputError(f"{what}: {len(body)} bytes dumped, {length} announced")
    return parse_read_full_status(
        struct.pack(">II", int(header["generation"], 16), length) + bytes(body))


def iscsi_transport_id(name: str, port_identifier: bool) -> bytes:
    """An iSCSI TransportID (SPC-4 7.6.4.6): protocol 5, format 0 (name) or 1 (port
    identifier `name,i,0x<ISID>`), the name NUL-terminated and padded to a multiple of 4
    (at least 20 bytes)."""
    encoded = name.encode() + b"\0"
    padded = encoded.ljust(max(20, -(-len(encoded) // 4) * 4), b"\0")
    return bytes([0x45 if port_identifier else 0x05, 0]) + struct.pack(">H", len(padded)) + padded


@dataclass
class _Descriptor:
    """One READ FULL STATUS descriptor while its lines are read."""

    key: int
    all_tg_pt: bool | None = None
    holder: bool | None = None
    scope: int = 0
    type: ReservationType | None = None
    port: int = 0
    transport_id: bytes = b""

    def registrant(self, what: str) -> Registrant:
        if self.all_tg_pt is None or self.holder is None:
            raise SgOutputError(f"{what}: incomplete descriptor for key {self.key:#x}")
        if self.holder and self.type is None:
            raise SgOutputError(f"{what}: holder {self.key:#x} without a type")
        return Registrant(self.key, self.all_tg_pt, self.holder, self.scope, self.type,
                          self.port, self.transport_id)


def parse_full_status_text(text: str) -> FullStatus:
    """READ FULL STATUS as mpathpersist prints it (it has no byte dump on stdout); iSCSI
    TransportIDs are re-encoded from the printed names, other protocols are refused."""
    what = "READ FULL STATUS output"
    lines = _lines(text)
    header = _match(_FULL_STATUS_HEADER, _first(lines, what), what)
    descriptors: list[_Descriptor] = []
    for line in lines[1:]:
        if line in ("No full status descriptors", "Transport Id of initiator:"):
            continue
        if holder := _HOLDER_LINE.fullmatch(line):
            descriptors.append(_Descriptor(int(holder["key"], 16)))
            continue
        if not descriptors:
            raise SgOutputError(f"{what}: unexpected line {line!r}")
        current = descriptors[-1]
        if line in ("All target ports bit set", "All target ports bit clear"):
            current.all_tg_pt = line.endswith("set")
        elif line in ("<< Reservation holder >>", "not reservation holder"):
            current.holder = line.startswith("<<")
        elif port := _RELATIVE_PORT.fullmatch(line):
            current.port = int(port["port"], 16)
        elif scope_type := _SCOPE_TYPE_LINE.fullmatch(line):
            current.scope = _scope(scope_type["scope"])
            current.type = _reservation_type(scope_type["type"], what)
        elif iscsi := _ISCSI_NAME.fullmatch(line):
            current.transport_id = iscsi_transport_id(iscsi["name"], iscsi["form"] != "name")
        else:
            raise SgOutputError(f"{what}: unexpected line {line!r}")
    return FullStatus(int(header["generation"], 16),
                      tuple(d.registrant(what) for d in descriptors))


# -- stderr of `sg_persist -vv` -----------------------------------------------------------
def raw_sense(stderr: str) -> bytes | None:
    """The sense bytes sg3_utils dumps at -vv ("Raw sense data (in hex), sb_len=N")."""
    found = _RAW_SENSE.search(stderr)
    if found is None:
        return None
    data = bytes.fromhex(" ".join(found["hex"].split()))
    return data[:int(found["length"])]


def data_in_length(stderr: str) -> int | None:
    """How many bytes the PR IN really returned, as `-vv` reports it (1.46 prints
    "got  got N bytes"), or None when the line is absent."""
    found = _DATA_IN.search(stderr)
    return int(found.group(1)) if found else None


def transport_failure(stderr: str) -> str | None:
    """The host/driver status of a failed SG_IO ("Host_status=0x03 [DID_TIME_OUT] ..."),
    which sg3_utils 1.46 reports on stderr while exiting 0; None if there was none."""
    found = _TRANSPORT.search(stderr)
    if found is None:
        return None
    rest = stderr[found.end():].lstrip("\n").splitlines()
    driver = rest[0].strip() if rest and rest[0].startswith("Driver_status=") else ""
    return f"{found['detail'].strip()} {driver}".strip()
