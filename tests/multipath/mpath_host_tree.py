"""The reference's dm-multipath host (reference/multipath.md sections 1-2) built with the
lab's HostTree, and readers for the stored udevadm samples."""
from __future__ import annotations

import re
from pathlib import Path

from stonewall.lab.host_tree import (HostTree, UdevRecord, naa_designator,  # noqa: F401
                                     relative_link, t10_designator, target_port_designator,
                                     vpd_pg83)

FIXTURES = Path(__file__).parent / "fixtures"

def read_udevadm_info(name: str) -> UdevRecord:
    """Parse a stored `udevadm info` fixture (P:, S:, E: lines; leading spaces allowed)."""
    devpath, links, properties = "", [], {}
    for line in (FIXTURES / name).read_text().splitlines():
        tag, _, value = line.strip().partition(": ")
        if tag == "P":
            devpath = value
        elif tag == "S":
            links.append(value)
        elif tag == "E":
            key, _, item = value.partition("=")
            properties[key] = item
    return UdevRecord(devpath, tuple(links), properties)


def read_attribute_walk(name: str) -> tuple[str, dict[str, str]]:
    """(devpath of the block device, ATTRS of its SCSI parent) from a stored
    `udevadm info --attribute-walk` excerpt."""
    text = (FIXTURES / name).read_text()
    devpath = re.search(r"looking at device '([^']+)'", text).group(1)
    attrs = dict(re.findall(r'ATTRS\{(\w+)\}=="([^"]*)"', text))
    return devpath, attrs


# ---- the reference host ---------------------------------------------------------------
FC_WWID_HEX = "620000007355abb3b8950167b5790928"  # mpatha, reference 2.2
ISCSI_WWID_HEX = "600507670880813290000000000003f4"  # map named by WWID, reference 2.3
ISCSI_TARGET = "iqn.1986-03.com.ibm:2145.v7k60.node1"  # reference 3.3
ATA_T10 = "ATA     QEMU HARDDISK                           QM00001 "


def _sg3_udev_properties(wwid_hex: str, vendor: str, model: str, id_path: str) -> dict[str, str]:
    """What sg3_utils' 55-scsi-sg3_id.rules and multipath's rules set on an NAA path
    (reference 2.1)."""
    return {"ID_SCSI": "1", "ID_BUS": "scsi", "ID_VENDOR": vendor, "ID_MODEL": model,
            "SCSI_IDENT_LUN_NAA_REGEXT": wwid_hex, "ID_SERIAL": "3" + wwid_hex,
            "ID_SERIAL_SHORT": wwid_hex, "ID_WWN_WITH_EXTENSION": "0x" + wwid_hex,
            "ID_WWN": "0x" + wwid_hex[:16], "ID_PATH": id_path,
            "DM_MULTIPATH_DEVICE_PATH": "1", "ID_FS_TYPE": "mpath_member", "SYSTEMD_READY": "0"}


def build_reference_host(root: Path) -> HostTree:
    """Two maps (friendly name 'mpatha' with 4 FC paths, one offline; a map named by its
    WWID with 2 iSCSI paths), a plain ATA disk, and devices discovery must skip: a CD-ROM,
    a virtio disk, an LVM volume and a kpartx partition map."""
    tree = HostTree(root)

    # FC: the path sdg is the reference's attribute walk, verbatim; sdf, sdh and sdi are
    # its siblings on two HBAs (hosts 2 and 3) and four remote ports.
    sdg_devpath, sdg_attrs = read_attribute_walk("udevadm-attribute-walk-sdg.txt")
    sdg_scsi = sdg_devpath.rsplit("/block/", 1)[0]
    host3 = tree.scsi_host("devices/pci0000:80/0000:80:02.0/0000:82:00.0/host3")
    host2 = tree.scsi_host("devices/pci0000:80/0000:80:01.0/0000:81:00.0/host2")
    fc_inquiry = {key: sdg_attrs[key] for key in ("vendor", "model", "rev", "dh_state", "wwid")}
    fc_inquiry["vpd_pg83"] = vpd_pg83(naa_designator(FC_WWID_HEX),
                                      t10_designator("OSNEXUS QUANTASTOR 1d8f7a96"),
                                      target_port_designator(1))
    fc_paths = (  # name, H:C:T:L, rport, state, sg, minor
        ("sdf", "2:0:0:2", f"{host2}/rport-2:0-2", "running", "sg5", 80),
        ("sdg", "3:0:0:2", f"{host3}/rport-3:0-4", sdg_attrs["state"], "sg7", 96),
        ("sdh", "3:0:1:2", f"{host3}/rport-3:0-5", "running", "sg8", 112),
        ("sdi", "2:0:1:2", f"{host2}/rport-2:0-3", "offline", "sg6", 128),
    )
    for index, (name, hctl, rport, state, sg, minor) in enumerate(fc_paths):
        rport_dir = tree.fc_rport(rport.rsplit("/", 1)[0], rport.rsplit("/", 1)[1],
                                  f"0x20000024ff7a{index:04x}", f"0x21000024ff7a{index:04x}")
        h, c, t, _ = hctl.split(":")
        scsi_devpath = f"{rport_dir}/target{h}:{c}:{t}/{hctl}"
        if name == "sdg":
            assert "/" + scsi_devpath == sdg_scsi, "the walk's device path is rebuilt"
        tree.scsi_disk(name, scsi_devpath, major=8, minor=minor, state=state, sg=sg,
                       inquiry=fc_inquiry,
                       udev=_sg3_udev_properties(FC_WWID_HEX, "OSNEXUS", "QUANTASTOR",
                                                 f"pci-0000:82:00.0-fc-{index}"))
    mpatha = read_udevadm_info("udevadm-info-dm-0-mpatha.txt")
    tree.dm_device("dm-0", name=mpatha.properties["DM_NAME"], uuid=mpatha.properties["DM_UUID"],
                   slaves=("sdf", "sdg", "sdh", "sdi"), major=int(mpatha.properties["MAJOR"]),
                   minor=int(mpatha.properties["MINOR"]), udev=mpatha)

    # iSCSI: two sessions to one target, the DEVPATH shape of reference 1.4.
    iscsi_inquiry = {"vendor": "IBM     ", "model": "2145            ", "rev": "0000",
                     "wwid": "naa." + ISCSI_WWID_HEX,
                     "vpd_pg83": vpd_pg83(target_port_designator(2),
                                          naa_designator(ISCSI_WWID_HEX))}
    for host, sid, name, sg, minor, address in ((7, 1, "sdb", "sg2", 16, "192.0.2.10"),
                                                (8, 2, "sdc", "sg1", 32, "192.0.2.11")):
        session = tree.iscsi_session(tree.scsi_host(f"devices/platform/host{host}"), sid,
                                     ISCSI_TARGET, address, 3260)
        tree.scsi_disk(name, f"{session}/target{host}:0:0/{host}:0:0:0", major=8, minor=minor,
                       state="running", sg=sg, inquiry=iscsi_inquiry,
                       udev=_sg3_udev_properties(
                           ISCSI_WWID_HEX, "IBM", "2145",
                           f"ip-{address}:3260-iscsi-{ISCSI_TARGET}-lun-0"))
    by_wwid = read_udevadm_info("udevadm-info-dm-29-wwid-name.txt")
    tree.dm_device("dm-29", name=by_wwid.properties["DM_NAME"],
                   uuid=by_wwid.properties["DM_UUID"], slaves=("sdb", "sdc"),
                   major=int(by_wwid.properties["MAJOR"]), minor=int(by_wwid.properties["MINOR"]),
                   udev=by_wwid)

    # A local ATA disk: T10 identity only; udev's ID_SERIAL is model_serial (ID_BUS=ata).
    ata_host = tree.scsi_host("devices/pci0000:00/0000:00:1f.2/ata1/host0")
    tree.scsi_disk("sda", f"{ata_host}/target0:0:0/0:0:0:0", major=8, minor=0, state="running",
                   sg="sg0", inquiry={"vendor": "ATA     ", "model": "QEMU HARDDISK   ",
                                      "wwid": "t10." + ATA_T10,
                                      "vpd_pg83": vpd_pg83(t10_designator(ATA_T10))},
                   udev={"ID_BUS": "ata", "ID_SERIAL": "QEMU_HARDDISK_QM00001",
                         "ID_MODEL": "QEMU_HARDDISK"})
    # Skipped by discovery: a CD-ROM (peripheral type 5), a virtio disk (no H:C:T:L),
    # an LVM volume and a kpartx partition of the WWID-named map.
    cdrom_host = tree.scsi_host("devices/pci0000:00/0000:00:1f.2/ata2/host1")
    tree.scsi_disk("sr0", f"{cdrom_host}/target1:0:0/1:0:0:0", major=11, minor=0,
                   state="running", sg="sg3", inquiry={"vendor": "QEMU    "},
                   peripheral_type="5")
    virtio = tree.node("devices/pci0000:00/0000:00:04.0/virtio1/block/vda", subsystem="block",
                       uevent={"MAJOR": "254", "MINOR": "0", "DEVNAME": "vda",
                               "DEVTYPE": "disk"})
    relative_link(virtio / "device", virtio.parent.parent)
    relative_link(tree.sys / "block" / "vda", virtio)
    tree.dm_device("dm-1", name="vg0-root", uuid="LVM-Zb5tW2fR0yBdgQ3Xg1ni2rGx5vN8C1dfKx",
                   slaves=("sda",), major=253, minor=1)
    tree.dm_device("dm-30", name=f"3{ISCSI_WWID_HEX}-part1", uuid=f"part1-mpath-3{ISCSI_WWID_HEX}",
                   slaves=("dm-29",), major=252, minor=30)
    return tree
