"""The validated cluster configuration, as typed values.

`stonewall.config.loader` builds these from one YAML file; every other module reads them and
never the YAML. Field names follow the YAML keys (see docs/config.md).
"""
from __future__ import annotations

from collections.abc import Mapping

from dataclasses import dataclass, field
from enum import Enum

from stonewall.storage.scsi.types import ReservationType


class Transport(str, Enum):
    """How a node reaches a LUN (DESIGN sections 1 and 3).

    `sg` is the data path: the kernel's path devices of the LUN's multipath map, the nexuses
    the node's guests (or DRBD) write through; an `iscsi:` location next to it adds a control
    path. `iscsi` alone is a control path only: the service's own libiscsi sessions, which no
    guest writes through (enough for an arbiter LUN)."""

    ISCSI = "iscsi"  # control path only: libiscsi sessions straight to the array's portals
    SG = "sg"  # data path: kernel SCSI path devices (SG_IO / sg_persist), optional control path


class SgBackend(str, Enum):
    """How the `sg` transport sends a PR command down a kernel path device."""

    SG_PERSIST = "sg_persist"  # one sg_persist process per command (and for diagnostics)
    SGIO = "sgio"  # ioctl(SG_IO) from the calling process (storage/scsi/sgio.py)


class LunRole(str, Enum):
    ARBITER = "arbiter"  # arbitrates fence races; worked first, lowest `order` first
    GUEST = "guest"  # one guest's disk: registered only where the guest runs (type 7)
    SHARED = "shared"  # any other shared LUN (DRBD backing, cluster file system)


class StartPolicy(str, Enum):
    """When a survivor may start a fenced peer's guest (DESIGN section 6)."""

    AFTER_POWER_OFF_OR_T_SAFE = "safe"  # default: power-off verified, or T_safe elapsed
    IMMEDIATE = "immediate"  # explicit opt-in: as soon as storage fencing is verified


class FenceLevelKind(str, Enum):
    STORAGE = "storage"
    POWER = "power"
    WAIT_T_SAFE = "wait-t-safe"  # opt-in "watchdog-only" level
    AGENT = "agent"  # any installed fence agent that cuts power (PDU outlets, Redfish, iLO)
    FABRIC = "fabric"  # a fence agent that cuts the node's SAN ports (fence_ifmib)

    @property
    def uses_agents(self) -> bool:
        """The level runs the fence agents of a device group the nodes name."""
        return self in (FenceLevelKind.AGENT, FenceLevelKind.FABRIC)


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
class AgentDevice:
    """One fence device driven by a fence-agents program (stonewall.power.agent).

    `options` are the agent's own parameters (its `-o metadata`), passed on stdin; the secret,
    read only when used, is passed as the option `secret_option` (password, community...)."""

    agent: str  # fence_apc_snmp, or an absolute path
    options: tuple[tuple[str, str], ...] = ()
    secret: Secret | None = None
    secret_option: str = "password"

    @property
    def label(self) -> str:
        """How logs name the device: agent and address/plug, never the secret."""
        shown = dict(self.options)
        where = "/".join(shown[key] for key in ("ip", "plug") if key in shown)
        return f"{self.agent}({where})" if where else self.agent


@dataclass(frozen=True)
class Node:
    name: str
    id: int  # 1..65535, unique in the cluster
    key: int  # 8-byte reservation key, never 0 (derived unless given)
    initiator: str | None = None  # iSCSI initiator name for the iscsi transport
    addresses: tuple[str, ...] = ()  # addresses DRBD knows this node by
    ipmi: IpmiSettings | None = None
    power_delay: float = 0.0  # wait before this node powers a peer off
    # Device group name -> the devices that fence this node, e.g. "pdu" -> both PDU outlets
    # of its two power supplies; an `agent` or `fabric` level names the group.
    fence_devices: tuple[tuple[str, tuple[AgentDevice, ...]], ...] = ()

    def devices(self, group: str) -> tuple[AgentDevice, ...]:
        """The devices of `group` (empty when this node has none)."""
        return dict(self.fence_devices).get(group, ())


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
    iscsi: IscsiLocation | None = None  # the control path (the only path for `iscsi`)
    reservation: ReservationType = ReservationType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY
    sg_backend: SgBackend = SgBackend.SGIO  # sg transport only

    @property
    def has_data_path(self) -> bool:
        """The node's kernel writes to this LUN through nexuses that carry its key."""
        return self.transport is Transport.SG


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
    devices: str | None = None  # agent and fabric levels: the nodes' device group
    # power and agent levels: also run after a verified storage fence (DESIGN 4.4), so that
    # `safe` guests need not wait T_safe
    also_after_storage: bool = False

    @property
    def name(self) -> str:
        """The level as logs name it: "power", "agent pdu", "fabric san"."""
        return f"{self.kind.value} {self.devices}" if self.devices else self.kind.value


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
    sysfs: str = "/sys"  # where the sg transport finds the kernel's path devices
    dev: str = "/dev"  # where their device nodes are
    boot_id: str = "/proc/sys/kernel/random/boot_id"  # the kernel's id of this boot


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
    # The 1-based line of each key path the loader read ("nodes[0].ipmi.password_file"), so
    # checks made after loading (secret files, the host) still name the line.
    key_lines: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)

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
