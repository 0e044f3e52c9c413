"""A LUN's WWID in any of its spellings, reduced to one comparable value.

The same LUN is spelled differently by each layer (reference/multipath.md 1.3, 2.1):
- multipath, udev `ID_SERIAL`/`DM_SERIAL`, the DM UUID after `mpath-`: one designator-type
  character then the designator: `3` + hex (NAA), `2` + hex (EUI-64), `8` + SCSI name
  string, `1` + T10 vendor id with each run of spaces turned into one `_`;
- the kernel's `device/wwid`: `naa.<hex>`, `eui.<hex>`, `t10.<text>`, or a raw SCSI name
  string such as `iqn.…`;
- `ID_WWN_WITH_EXTENSION`, `DM_WWN` and the `wwn-` by-id links: `0x<hex>`, which drops the
  type digit;
- /dev/disk/by-id link names: `scsi-<multipath form>`, `wwn-0x<hex>`,
  `dm-uuid-mpath-<multipath form>`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from stonewall.storage.multipath.errors import InvalidWwid


class WwidKind(str, Enum):
    """The designator a WWID was made from; the value is multipath's type character."""

    VENDOR_SPECIFIC = "0"
    T10 = "1"
    EUI64 = "2"
    NAA = "3"
    SCSI_NAME = "8"
    SERIAL = "S"  # scsi_id's vendor_model_serial fallback from VPD page 0x80
    # An identifier multipath took verbatim from udev (its uid_attribute) that follows no
    # designator spelling, e.g. an ATA disk's model_serial. Matches only itself.
    OTHER = ""


# SPC-4 7.8.6.6: an NAA designator is 8 bytes, or 16 for NAA 6 (IEEE Registered Extended).
_NAA_HEX_LENGTHS = (16, 32)
# SPC-4 7.8.6.5: EUI-64 based designators are 8, 12 or 16 bytes.
_EUI_HEX_LENGTHS = (16, 24, 32)
# `0x<hex>` may carry either, so it admits every length of both.
_UNTYPED_HEX_LENGTHS = (16, 24, 32)
_HEX = re.compile(r"[0-9a-f]+")
_BY_ID_DIR = "/dev/disk/by-id/"
_PARTITION_UUID = re.compile(r"part\d+-mpath-")


@dataclass(frozen=True)
class Wwid:
    """One LUN identity. `kind` is None when the spelling carried no type (`0x<hex>`)."""

    kind: WwidKind | None
    value: str  # lowercase hex for NAA, EUI-64 and untyped; the identifier text otherwise

    def __str__(self) -> str:
        """The multipath spelling (the DM UUID without `mpath-`); `0x<hex>` when untyped."""
        if self.kind is None:
            return "0x" + self.value
        return self.kind.value + self.value

    def matches(self, other: "Wwid") -> bool:
        """True if both name the same LUN. An untyped `0x<hex>` matches the NAA or EUI-64
        WWID with the same hex: the type digit is all it lacks."""
        if self.value != other.value:
            return False
        hex_kinds = (None, WwidKind.NAA, WwidKind.EUI64)
        if self.kind is None or other.kind is None:
            return self.kind in hex_kinds and other.kind in hex_kinds
        return self.kind is other.kind


def parse_wwid(text: str) -> Wwid:
    """The WWID spelled by `text` (any spelling listed in the module docstring, also as a
    full /dev/disk/by-id/ path). Raises InvalidWwid with the reason otherwise."""
    spelled = text.strip()
    if spelled.startswith(_BY_ID_DIR):
        spelled = spelled[len(_BY_ID_DIR):]
    if _PARTITION_UUID.match(spelled):
        raise InvalidWwid(f"{text!r} names a partition of a multipath map, not a LUN")
    for prefix in ("dm-uuid-mpath-", "mpath-", "scsi-"):
        if spelled.startswith(prefix):
            return _parse_multipath_form(spelled[len(prefix):], text)
    if spelled.startswith("wwn-"):
        spelled = spelled[len("wwn-"):]
        if not spelled.lower().startswith("0x"):
            raise InvalidWwid(f"{text!r}: a wwn- link name continues with 0x<hex>")
    head, lowered = spelled[:4].lower(), spelled.lower()
    if head == "naa.":
        return Wwid(WwidKind.NAA, _hex(lowered[4:], _NAA_HEX_LENGTHS, text))
    if head == "eui.":
        return Wwid(WwidKind.EUI64, _hex(lowered[4:], _EUI_HEX_LENGTHS, text))
    if head == "t10.":
        return Wwid(WwidKind.T10, _t10(spelled[4:], text))
    if head == "iqn.":
        return Wwid(WwidKind.SCSI_NAME, spelled)
    if lowered.startswith("0x"):
        return Wwid(None, _hex(lowered[2:], _UNTYPED_HEX_LENGTHS, text))
    return _parse_multipath_form(spelled, text)


def multipath_wwid(text: str) -> Wwid | None:
    """A WWID as multipath itself spells it (DM UUID tail, `ID_SERIAL`, multipathd's
    `uuid`). Unlike parse_wwid this accepts any text, since multipath takes whatever udev
    gives: what fits no designator spelling becomes kind OTHER. None for empty text."""
    spelled = text.strip()
    if not spelled:
        return None
    try:
        return _parse_multipath_form(spelled, text)
    except InvalidWwid:
        return Wwid(WwidKind.OTHER, spelled)


def wwid_from_dm_uuid(uuid: str) -> Wwid | None:
    """The WWID of a multipath map from its DM UUID (`mpath-<wwid>`, reference 1.2); None
    for any other dm device (LVM, crypt, kpartx partitions `part<N>-mpath-…`)."""
    if not uuid.startswith("mpath-"):
        return None
    return multipath_wwid(uuid[len("mpath-"):])


def device_wwid(vpd_pg83: bytes | None, wwid_attribute: str | None) -> Wwid | None:
    """A SCSI device's WWID from its sysfs attributes. The binary `vpd_pg83` comes first,
    because multipath derives the map's WWID from it; the kernel's `wwid` text (which ranks
    designators slightly differently) only when the page is missing or names nothing."""
    if vpd_pg83:
        try:
            found = wwid_from_vpd_pg83(vpd_pg83)
        except InvalidWwid:
            found = None
        if found is not None:
            return found
    if wwid_attribute:
        try:
            return parse_wwid(wwid_attribute)
        except InvalidWwid:
            return None
    return None


def wwid_from_vpd_pg83(page: bytes) -> Wwid | None:
    """The WWID multipath derives from a binary VPD page 0x83 (as sysfs `vpd_pg83` holds it),
    or None if the page names no usable LUN designator. Raises InvalidWwid when the page
    header is malformed."""
    if len(page) < 4 or page[1] != 0x83:
        raise InvalidWwid("not a VPD page 0x83 (byte 1 must be 0x83)")
    end = min(len(page), 4 + int.from_bytes(page[2:4], "big"))
    best: tuple[int, Wwid] | None = None
    offset = 4
    while offset + 4 <= end:
        length = page[offset + 3]
        payload = page[offset + 4:offset + 4 + length]
        if len(payload) < length:
            break  # a designator running past the page: stop, as multipath does
        candidate = _rank_designator(page[offset + 1], payload)
        # The first designator of the highest rank wins (multipath compares with '>').
        if candidate is not None and (best is None or candidate[0] > best[0]):
            best = candidate
        offset += 4 + length
    return best[1] if best else None


def _rank_designator(type_byte: int, payload: bytes) -> tuple[int, Wwid] | None:
    """(rank, WWID) of one designator, ranked as multipath prefers them (reference 1.3):
    NAA 6 > NAA 5 > NAA 2 > EUI-64 > SCSI name > T10 > NAA 3; None if not usable."""
    association, designator_type = (type_byte >> 4) & 0x3, type_byte & 0xF
    if association != 0 or not payload:  # only designators of the logical unit itself
        return None
    if designator_type == 0x3:
        rank = {6: (8, 16), 5: (7, 8), 2: (6, 8), 3: (1, 8)}.get(payload[0] >> 4)
        if rank is None or len(payload) != rank[1]:
            return None
        return rank[0], Wwid(WwidKind.NAA, payload.hex())
    if designator_type == 0x2 and len(payload) in (8, 12, 16):
        return 4, Wwid(WwidKind.EUI64, payload.hex())
    if designator_type == 0x8:
        name = payload.split(b"\0", 1)[0].decode("ascii", "replace")
        if name[:4] in ("naa.", "eui.", "iqn."):
            try:
                return 3, parse_wwid(name)
            except InvalidWwid:
                return None
        return None
    if designator_type == 0x1 and len(payload) >= 8:
        text = payload.decode("ascii", "replace")
        try:
            return 2, Wwid(WwidKind.T10, _t10(text, text))
        except InvalidWwid:
            return None
    return None


def _parse_multipath_form(spelled: str, original: str) -> Wwid:
    if not spelled:
        raise InvalidWwid(f"{original!r}: empty WWID")
    try:
        kind = WwidKind(spelled[0])
    except ValueError:
        raise InvalidWwid(
            f"{original!r} is not a WWID: expected a type digit (3 NAA, 2 EUI-64, 8 SCSI name, "
            "1 T10) then the identifier, or naa./eui./t10./0x spellings") from None
    rest = spelled[1:]
    if kind is WwidKind.NAA:
        return Wwid(kind, _hex(rest.lower(), _NAA_HEX_LENGTHS, original))
    if kind is WwidKind.EUI64:
        return Wwid(kind, _hex(rest.lower(), _EUI_HEX_LENGTHS, original))
    if kind is WwidKind.T10:
        return Wwid(kind, _t10(rest, original))
    if not rest.strip():
        raise InvalidWwid(f"{original!r}: type {kind.value} with no identifier")
    return Wwid(kind, rest.strip())


def _hex(digits: str, lengths: tuple[int, ...], original: str) -> str:
    if not _HEX.fullmatch(digits) or len(digits) not in lengths:
        raise InvalidWwid(f"{original!r}: expected {' or '.join(map(str, lengths))} hex digits "
                          f"after the type, got {digits!r} ({len(digits)})")
    return digits


def _t10(text: str, original: str) -> str:
    # multipath turns every run of spaces into one '_' and drops trailing ones; the kernel's
    # t10. spelling keeps the INQUIRY padding. Normalising both the same way makes them equal.
    collapsed = re.sub(" +", "_", text.rstrip(" \0"))
    if not collapsed:
        raise InvalidWwid(f"{original!r}: empty T10 vendor identifier")
    return collapsed
