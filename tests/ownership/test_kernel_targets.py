"""A lab kernel whose LUNs live on two targets of one array (as the benchmark's 512 LUNs do):
the sysfs tree shows one iSCSI session per target and portal, each map's paths name their
own target, and the node's service registers its key on every data-path nexus of both."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from stonewall.clock import SYSTEM_CLOCK, Deadline
from stonewall.config.loader import load_config
from stonewall.lab.cluster import LabCluster, LabLun, control_path_luns
from stonewall.lab.identities import ARRAY_IQN
from stonewall.lab.tgtd import Tgtd
from stonewall.storage import ownership
from stonewall.storage.multipath.sysfs import discover_sysfs
from stonewall.storage.multipath.types import IscsiLink
from stonewall.storage.paths import close_paths, connect_paths, plan_paths

from ..lab_fixtures import Lab

SECOND_IQN = ARRAY_IQN + "-second"
LUNS = [LabLun("first-1", 1, data_path=True), LabLun("first-2", 2, data_path=True),
        LabLun("second-1", 1, data_path=True, target=SECOND_IQN)]


def soon() -> Deadline:
    return Deadline.after(20)


@pytest.fixture
def two_target_lab(tgtd: Tgtd, tmp_path: Path) -> Iterator[Lab]:
    for lun in (1, 2):
        if lun not in tgtd.targets[1].luns:
            tgtd.add_lun(1, lun)
    tgtd.add_lun(tgtd.add_target(SECOND_IQN), 1)
    lab = Lab(LabCluster(tmp_path / "lab", tgtd, luns=list(LUNS)))
    try:
        yield lab
    finally:
        lab.stop()


def test_each_map_path_names_its_own_target_and_portal(two_target_lab: Lab) -> None:
    kernel = two_target_lab.cluster.kernels["node-a"]
    found = discover_sysfs(kernel.sysfs)
    links = {m.name: sorted((p.link.target, p.link.port) for p in m.paths
                            if isinstance(p.link, IscsiLink)) for m in found.maps}
    ports = sorted(int(portal.rsplit(":", 1)[1])
                   for portal in two_target_lab.cluster.tgtd.portals)
    assert links == {"first-1": [(ARRAY_IQN, port) for port in ports],
                     "first-2": [(ARRAY_IQN, port) for port in ports],
                     "second-1": [(SECOND_IQN, port) for port in ports]}
    # Distinct LUNs got distinct identities: the WWIDs came from each target's own page.
    assert len({m.wwid for m in found.maps}) == 3


def test_the_service_registers_every_data_path_nexus_on_both_targets(
        two_target_lab: Lab) -> None:
    two_target_lab.start_holder("node-a")
    config = load_config(str(two_target_lab.configs["node-a"]))
    key = config.node("node-a").key
    paths = plan_paths(control_path_luns(config.luns), "iqn.2026-12.lab.stonewall:observer",
                       role="observer")
    try:
        connect_paths(paths, soon())
        views = ownership.read_views(paths, soon(), SYSTEM_CLOCK)
    finally:
        close_paths(paths)
    # One entry per registered nexus: two data paths (the kernel) and two control paths.
    assert {name: sorted(view.up_paths[0].keys or ()) for name, view in views.items()} == {
        lun.name: [key] * 4 for lun in LUNS}
