"""Pacemaker's fencing topology, live, in the two-node namespace lab: fence_stonewall at
level 1, Debian's fence_ipmilan against the node's lab BMC at level 2, a PDU pair
(fence_apc_snmp + fence_eaton_snmp, one outlet per power supply) at level 3. BMCs and PDUs sit
on a management network of their own. node1 loses the SAN and the cluster link at once, so
its level 1 cannot verify; levels 2 and 3 take over, measured from the cut to the fence
reported."""
from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from stonewall.clock import Deadline
from stonewall.lab.bmc_process import BmcProcess
from stonewall.lab.cluster import LabCluster
from stonewall.lab.netns import ip
from stonewall.lab.pacemaker import MGMT_ADDRESS, NODE_NAMES, TwoNodeLab
from stonewall.lab.pacemaker_config import CibSeed, FenceDevice, FencingLevel
from stonewall.lab.snmp_process import SnmpDeviceProcess

from ..lab_fixtures import Lab
from .conftest import add_lab_luns, skip_without_pacemaker
from .support import LUNS, holder_service

pytestmark = pytest.mark.slow

NODE_CONFIG = "/run/stonewall/cluster.yaml"
FENCED_WITHIN = 150.0
APC_COMMUNITY, EATON_COMMUNITY = "apc-lab-community", "eaton-lab-community"
SWITCH_COMMUNITY = "switch-lab-community"
OUTLET = {"node1": 1, "node2": 2}


@dataclass
class Topology:
    lab: TwoNodeLab
    bmc: BmcProcess  # node2's BMC
    apc: SnmpDeviceProcess
    eaton: SnmpDeviceProcess
    switch: SnmpDeviceProcess

    def fenced(self, target: str) -> bool:
        history = self.lab.nodes["node1"].stonith_admin("--history", target, "--verbose",
                                                        timeout=20)
        return f"turning off of {target} successful" in history.stdout \
            or f"off of {target} successful" in history.stdout


def devices(bmc: BmcProcess, apc: SnmpDeviceProcess, eaton: SnmpDeviceProcess,
            switch: SnmpDeviceProcess) -> list[FenceDevice]:
    host_map = ";".join(f"{node}:{outlet}" for node, outlet in OUTLET.items())
    return [
        # node2 fences node1 only after a minute: node1 is the one measured here.
        FenceDevice("swdev", {"pcmk_host_list": "node1 node2", "config": NODE_CONFIG,
                              "pcmk_delay_base": "node1:60s"}),
        FenceDevice("ipmi2", {"ip": bmc.host, "ipport": str(bmc.port), "username": bmc.user,
                              "password": bmc.password, "lanplus": "1",
                              "pcmk_host_list": "node2",
                              # A dead BMC costs this, not Pacemaker's 60 s default.
                              "pcmk_off_timeout": "20s"},
                    agent="fence_ipmilan", provides_unfencing=False),
        FenceDevice("pdu1", {"ip": apc.host, "ipport": str(apc.port), "snmp_version": "2c",
                             "community": APC_COMMUNITY, "pcmk_host_map": host_map},
                    agent="fence_apc_snmp", provides_unfencing=False),
        FenceDevice("pdu2", {"ip": eaton.host, "ipport": str(eaton.port), "snmp_version": "2c",
                             "community": EATON_COMMUNITY, "power_wait": "0",
                             "pcmk_host_map": host_map},
                    agent="fence_eaton_snmp", provides_unfencing=False),
        FenceDevice("san-switch", {"ip": switch.host, "ipport": str(switch.port),
                                   "snmp_version": "2c", "community": SWITCH_COMMUNITY,
                                   "pcmk_host_map": ";".join(
                                       f"{node}:port-{outlet}" for node, outlet in OUTLET.items())},
                    agent="fence_ifmib", provides_unfencing=False),
    ]


POWER_TOPOLOGY = [FencingLevel("node2", 1, ["swdev"]), FencingLevel("node2", 2, ["ipmi2"]),
                  FencingLevel("node2", 3, ["pdu1", "pdu2"]),
                  FencingLevel("node1", 1, ["swdev"])]
FABRIC_TOPOLOGY = [FencingLevel("node2", 1, ["swdev"]), FencingLevel("node2", 2, ["san-switch"]),
                   FencingLevel("node1", 1, ["swdev"])]


@contextmanager
def topology_lab(workdir: Path, topology: list[FencingLevel] = POWER_TOPOLOGY
                 ) -> Iterator[Topology]:
    skip_without_pacemaker()
    lab = TwoNodeLab(workdir, management=True)
    started: list[BmcProcess | SnmpDeviceProcess] = []
    try:
        lab.start_network()
        add_lab_luns(lab.tgtd)
        bmc = BmcProcess(workdir / "bmc-node2", host=MGMT_ADDRESS, netns=lab.san.name)
        started.append(bmc.start())
        apc = SnmpDeviceProcess(workdir / "pdu1", "apc-rpdu", community=APC_COMMUNITY,
                                host=MGMT_ADDRESS, netns=lab.san.name)
        started.append(apc.start())
        eaton = SnmpDeviceProcess(workdir / "pdu2", "eaton-managed", community=EATON_COMMUNITY,
                                  host=MGMT_ADDRESS, netns=lab.san.name)
        started.append(eaton.start())
        switch = SnmpDeviceProcess(workdir / "switch", "ifmib", community=SWITCH_COMMUNITY,
                                   host=MGMT_ADDRESS, netns=lab.san.name)
        started.append(switch.start())
        nodes = Lab(LabCluster(workdir / "lab", lab.tgtd, nodes=list(NODE_NAMES), luns=LUNS,
                               cluster="swtopo"))
        seed = CibSeed("swtopo", devices=devices(bmc, apc, eaton, switch), topology=topology,
                       properties={"stonith-action": "off"})
        services = {node: [holder_service(nodes, node, NODE_CONFIG)] for node in NODE_NAMES}
        binds = {node: [(str(nodes.cluster.node_dir(node)), "/run/stonewall")]
                 for node in NODE_NAMES}
        deadline = Deadline.after(90)
        lab.start_nodes({node: seed for node in NODE_NAMES}, deadline, services=services,
                        binds=binds)
        for node in lab.nodes.values():
            node.wait_started("dummy", deadline)
        yield Topology(lab, bmc, apc, eaton, switch)
    finally:
        try:
            lab.stop()
        finally:
            for device in started:
                device.stop()
    left = [name for name in ip("netns", "list").split() if name.startswith(f"sw{lab.tag}")]
    assert left == [], f"namespaces left behind: {left}"


def cut_node1_off(topology: Topology) -> float:
    began = time.monotonic()
    topology.lab.cut_san_link("node1")
    topology.lab.cut_cluster_link()
    return began


def wait_fenced(topology: Topology, target: str) -> None:
    deadline = Deadline.after(FENCED_WITHIN)
    while not topology.fenced(target):
        assert not deadline.expired(), f"{target} not fenced within {FENCED_WITHIN:g} s"
        time.sleep(0.5)


def test_level_1_cannot_verify_and_ipmi_at_level_2_fences(tmp_path: Path) -> None:
    with topology_lab(tmp_path) as topology:
        began = cut_node1_off(topology)
        wait_fenced(topology, "node2")
        took = time.monotonic() - began
        print(f"cut -> node2 fenced by level 2 (fence_ipmilan): {took:.1f} s")
        assert topology.bmc.state().power == "off"
        assert topology.apc.outlets()[str(OUTLET["node2"])] == "on"


def test_a_dead_bmc_leaves_it_to_the_pdu_pair_at_level_3(tmp_path: Path) -> None:
    with topology_lab(tmp_path) as topology:
        topology.bmc.set_mute()  # node2 lost all power: its BMC went with it
        began = cut_node1_off(topology)
        wait_fenced(topology, "node2")
        took = time.monotonic() - began
        print(f"cut -> node2 fenced by level 3 (PDU pair): {took:.1f} s")
        outlet = str(OUTLET["node2"])
        assert topology.apc.outlets()[outlet] == "off"
        assert topology.eaton.outlets()[outlet] == "off"


def test_a_switch_port_at_level_2_fences_by_fabric(tmp_path: Path) -> None:
    with topology_lab(tmp_path, FABRIC_TOPOLOGY) as topology:
        began = cut_node1_off(topology)
        wait_fenced(topology, "node2")
        took = time.monotonic() - began
        print(f"cut -> node2 fenced by level 2 (fence_ifmib, its SAN port down): {took:.1f} s")
        assert topology.switch.outlets() == {"1": "on", "2": "off"}
        assert topology.bmc.state().power == "on"
