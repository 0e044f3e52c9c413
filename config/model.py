"""The validated cluster configuration, as typed values.

`stonewall.config.loader` builds these from one YAML file; every other module reads them and
never the YAML. Field names follow the YAML keys (see docs/config.md).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from stonewall.storage.scsi.types import ReservationType


class Transport(str, Enum):
    """How a node reaches a LUN."""

    ISCSI = "iscsi"  # libiscsi sessions straight to the array's portals, one per path
    SG = "sg"  # kernel SCSI devices through sg3_utils (sg_persist / mpathpersist)


class SgBackend(str, Enum):
    """How the `sg` transport sends a PR command down a kernel path device."""

    SG_PERSIST = "sg_persist"  # one sg_persist process per command (and for diagnostics)
    SGIO = "sgio"  # ioctl(SG_IO) from the calling process (storage/scsi/sgio.py)


class LunRole(str, Enum):
    ARBITER = "arbiter"  # arbitrates fence races; worked first, lowest `order` first
    GUEST = "guest"  # belongs to one guest; may carry a type-1 reservation
    SHARED = "shared"  # any other shared LUN (DRBD backing, cluster file system)


class StartPolicy(str, Enum):
    """When a survivor may start a fenced peer's guest (DESIGN section 6)."""

    AFTER_POWER_OFF_OR_T_SAFE = "safe"  # default: power-off verified, or T_safe elapsed
    IMMEDIATE = "immediate"  # explicit opt-in: as soon as storage fencing is verified


class FenceLevelKind(str, Enum):
    STORAGE = "storage"
    POWER = "power"
    WAIT_T_SAFE = "wait-t-safe"  # opt-in "watchdog-only" level


@dataclass(frozen=True)
class Secret:
    """Where a secret comes from; the value is read only when used and never printed.

    `inline` holds a password written in the config file itself (allowed only when that file
    is private to its owner); it is kept out of repr and str.
    """

    file: str | None = None
    env: str | None = None
    inline: str | None = None

    def __repr__(self) -> str:
        if self.file:
            source = f"file={self.file}"
        elif self.env:
            source = f"env={self.env}"
        else:
            source = "inline"
        return f"Secret({source})"


@dataclass(frozen=True)
class IpmiSettings:
    address: str
    username: str
    password: Secret
    port: int = 623
    privilege: str = "operator"  # callback | user | operator | administrator
    cipher_suite: int = 3
    timeout: float = 10.0  # hard deadline of one power operation, seconds
    poll_interval: float = 0.5


@dataclass(frozen=True)
class Node:
    name: str
    id: int  # 1..65535, unique in the cluster
    key: int  # 8-byte reservation key, never 0 (derived unless given)
    initiator: str | None = None  # iSCSI initiator name for the iscsi transport
    addresses: tuple[str, ...] = ()  # addresses DRBD knows this node by
    ipmi: IpmiSettings | None = None
    power_delay: float = 0.0  # wait before this node powers a peer off


@dataclass(frozen=True)
class Portal:
    host: str
    port: int = 3260

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class IscsiLocation:
    target: str  # target IQN
    lun: int
    portals: tuple[Portal, ...]  # one path per portal


@dataclass(frozen=True)
class Lun:
    name: str
    role: LunRole
    transport: Transport
    order: int = 100  # arbiter order: lower first
    wwid: str | None = None  # for the sg transport (multipath map or SCSI device)
    alias: str | None = None  # multipath alias (/dev/mapper/ALIAS)
    iscsi: IscsiLocation | None = None
    reservation: ReservationType = ReservationType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY
    sg_backend: SgBackend = SgBackend.SG_PERSIST  # sg transport only


@dataclass(frozen=True)
class DrbdResource:
    name: str
    luns: tuple[str, ...]  # LUN names that arbitrate for this resource
    peers: dict[int, str] = field(default_factory=dict)  # DRBD node-id -> node name
    minors: tuple[int, ...] = ()  # DRBD minors of its volumes (/dev/drbdN)


@dataclass(frozen=True)
class Guest:
    name: str
    luns: tuple[str, ...]
    home: str | None = None  # node that runs it normally
    order: int = 100  # start order after a takeover: lower first
    start_policy: StartPolicy = StartPolicy.AFTER_POWER_OFF_OR_T_SAFE


@dataclass(frozen=True)
class FenceLevel:
    kind: FenceLevelKind
    timeout: float


@dataclass(frozen=True)
class WatchdogSettings:
    device: str = "/dev/watchdog"
    allow_standin: bool = False  # the userspace stand-in only when the operator says so
    interval: float = 1.0  # seconds between ownership checks
    io_deadline: float = 2.0  # one check's storage I/O must finish within this
    check_deadline: float = 5.0  # pet only while the newest good check is younger
    timeout: float = 10.0  # watchdog device timeout
    grace: float = 5.0  # storage unreachable this long -> self-fence
    margin: float = 2.0  # added to T_safe for clock and scheduling slack


@dataclass(frozen=True)
class Paths:
    state_dir: str = "/var/lib/stonewall"
    runtime_dir: str = "/run/stonewall"
    event_log: str = "/var/log/stonewall/events.jsonl"


@dataclass(frozen=True)
class ClusterConfig:
    source: str  # file it was loaded from
    cluster: str
    nodes: tuple[Node, ...]
    luns: tuple[Lun, ...]
    drbd_resources: tuple[DrbdResource, ...] = ()
    guests: tuple[Guest, ...] = ()
    fencing: tuple[FenceLevel, ...] = ()
    watchdog: WatchdogSettings = WatchdogSettings()
    paths: Paths = Paths()
    libvirt_uri: str = "qemu:///system"
    # The lab's guests write their stamped blocks through the node's registered nexus (as a
    # real guest's I/O goes through the node's kernel nexus): the holder's `write` operation,
    # refused unless this is true. Never set it on a real cluster.
    lab_guest_io: bool = False

    def node(self, name: str) -> Node:
        """The node called `name`; KeyError if there is none."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def lun(self, name: str) -> Lun:
        """The LUN called `name`; KeyError if there is none."""
        for lun in self.luns:
            if lun.name == name:
                return lun
        raise KeyError(name)

    def node_by_key(self, key: int) -> Node | None:
        """The node that registers `key`, or None for a foreign key."""
        return next((n for n in self.nodes if n.key == key), None)

    def luns_in_arbiter_order(self, names: tuple[str, ...] | None = None) -> list[Lun]:
        """LUNs (all, or those named) with arbiters first by `order`, then the rest by order."""
        chosen = self.luns if names is None else tuple(self.lun(n) for n in names)
        return sorted(chosen, key=lambda lun: (lun.role is not LunRole.ARBITER, lun.order, lun.name))
