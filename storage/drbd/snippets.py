"""The drbd.conf lines that hand fencing to stonewall, for DRBD 8.4 or 9.

A handler without a fencing policy is never called, and the policy lives in a different
section per version (reference/drbd.md 2.2 and issue azure-docs#99894): `disk { fencing ...; }`
in 8.4, `net { fencing ...; }` in 9. Only the current handler names are emitted; `outdate-peer`
is the pre-8.3 alias that LINSTOR rejects.
"""
from __future__ import annotations

from stonewall.storage.drbd.env import DrbdVersion, check_resource_name

FENCE_PEER_PROGRAM = "/usr/sbin/stonewall-drbd-fence-peer"
UNFENCE_PEER_PROGRAM = "/usr/sbin/stonewall-drbd-unfence-peer"
SPLIT_BRAIN_PROGRAM = "/usr/sbin/stonewall-drbd-split-brain"

# Freeze I/O while fence-peer runs and keep it frozen unless the handler proves the peer fenced.
FENCING_POLICY = "resource-and-stonith"

_FENCING_SECTION = {DrbdVersion.V8_4: "disk", DrbdVersion.V9: "net"}


def fencing_section(version: DrbdVersion) -> str:
    """The drbd.conf section that holds `fencing` for `version`."""
    return _FENCING_SECTION[DrbdVersion(version)]


def drbd_config_snippet(version: DrbdVersion, resource: str | None = None) -> str:
    """drbd.conf text to paste into `resource <name> { }` (or `common { }` when no resource)."""
    version = DrbdVersion(version)
    target = "common { ... } (all resources)" if resource is None \
        else f"resource {check_resource_name(resource)} {{ ... }}"
    notes = [
        f"# stonewall fencing for DRBD {version.value}: paste inside {target},",
        "# on every node, then run 'drbdadm adjust <resource>'.",
        f"# {FENCING_POLICY} freezes I/O while fence-peer runs; I/O resumes only when",
        "# stonewall proves the peer fenced (or on reconnect / 'drbdadm resume-io').",
    ]
    if version is DrbdVersion.V9:
        notes.append("# DRBD 9 refuses this policy with protocol A: use protocol C.")
    section = fencing_section(version)
    body = [
        f"{section} {{",
        f"    fencing {FENCING_POLICY};",
        "}",
        "handlers {",
        f'    fence-peer "{FENCE_PEER_PROGRAM}";',
        f'    unfence-peer "{UNFENCE_PEER_PROGRAM}";',
        f'    split-brain "{SPLIT_BRAIN_PROGRAM}";',
        "}",
    ]
    return "\n".join(notes + body) + "\n"
