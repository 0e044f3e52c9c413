"""The fakesg shim's surface as real programs see it: stat/fstat/statx of the fake paths,
open/ioctl/close, SG_IO both ways through the nexus wire, and the failure paths."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stonewall.clock import Deadline
from stonewall.lab.shim import (
    SHIM_SOURCE, ShimDevice, build_shim, shim_environment, write_device_map)
from stonewall.storage.scsi import cdb
from stonewall.storage.scsi.device import CommandResult
from stonewall.storage.scsi.errors import DeviceError
from stonewall.storage.scsi.sg import SgPersistDevice, SgRunner

from .sg_lab import ScriptedNexus

PROBE = r"""
import errno, fcntl, os, stat, struct, sys
SG_GET_VERSION_NUM, SG_GET_SCSI_ID = 0x2282, 0x2276
path = sys.argv[1]
info = os.stat(path)
kind = "chr" if stat.S_ISCHR(info.st_mode) else "blk" if stat.S_ISBLK(info.st_mode) else "?"
print("stat", kind, os.major(info.st_rdev), os.minor(info.st_rdev))
fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
info = os.fstat(fd)
print("fstat", os.major(info.st_rdev), os.minor(info.st_rdev))
version = fcntl.ioctl(fd, SG_GET_VERSION_NUM, struct.pack("i", 0))
print("version", struct.unpack("i", version)[0])
try:
    fcntl.ioctl(fd, SG_GET_SCSI_ID, bytes(32))
except OSError as exc:
    print("other ioctl", errno.errorcode[exc.errno])
os.close(fd)
print("closed fd is plain again", stat.S_ISREG(os.fstat(os.open(sys.argv[0], os.O_RDONLY)).st_mode))
"""


def run_with(nexus: ScriptedNexus, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, env={**os.environ, **nexus.environment},
                          capture_output=True, text=True, timeout=30)


def test_python_sees_a_char_device_and_a_block_device(scripted_nexus: ScriptedNexus,
                                                      tmp_path: Path):
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    sg_out = run_with(scripted_nexus, sys.executable, str(probe), scripted_nexus.sg_path)
    assert sg_out.stdout.splitlines() == [
        "stat chr 21 3", "fstat 21 3", "version 30536", "other ioctl ENOTTY",
        "closed fd is plain again True"], sg_out.stderr
    block_out = run_with(scripted_nexus, sys.executable, str(probe), scripted_nexus.block_path)
    assert block_out.stdout.splitlines()[:2] == ["stat blk 8 32", "fstat 8 32"]


XSTAT_PROBE = r"""
import ctypes, stat, sys
libc = ctypes.CDLL(None)  # finds the shim's __xstat first, as an old binary would bind it
buffer = ctypes.create_string_buffer(144)  # struct stat on x86_64; st_mode at offset 24
for path in sys.argv[1:]:
    assert libc.__xstat(1, path.encode(), buffer) == 0
    mode = int.from_bytes(buffer.raw[24:28], "little")
    print(stat.S_ISCHR(mode), stat.S_ISBLK(mode))
"""


def test_pre_2_33_xstat_entry_points(scripted_nexus: ScriptedNexus, tmp_path: Path):
    probe = tmp_path / "xstat.py"
    probe.write_text(XSTAT_PROBE)
    out = run_with(scripted_nexus, sys.executable, str(probe), scripted_nexus.block_path,
                   "/dev/null")  # the second falls through to glibc's compat symbol
    assert out.stdout.splitlines() == ["False True", "True False"], out.stderr


def test_coreutils_stat_through_statx(scripted_nexus: ScriptedNexus):
    out = run_with(scripted_nexus, "stat", "-c", "%F %t:%T", scripted_nexus.sg_path,
                   scripted_nexus.block_path)
    assert out.stdout.splitlines() == ["character special file 15:3", "block special file 8:20"]


def test_paths_outside_the_map_are_untouched(scripted_nexus: ScriptedNexus):
    out = run_with(scripted_nexus, "stat", "-c", "%F", "/dev/null", "/")
    assert out.stdout.splitlines() == ["character special file", "directory"]
    plain = subprocess.run(["stat", scripted_nexus.sg_path], capture_output=True, text=True)
    assert plain.returncode != 0  # without the shim the fake path does not exist


def test_inquiry_data_in_reaches_sg_inq(scripted_nexus: ScriptedNexus):
    standard_inquiry = (bytes([0x00, 0x00, 0x06, 0x02, 31, 0, 0, 0x02]) + b"STONEWAL"
                        + b"FAKESG SHIM TEST" + b"0042")
    scripted_nexus.target.answer = CommandResult(0x00, standard_inquiry)
    out = run_with(scripted_nexus, "sg_inq", scripted_nexus.block_path)
    assert out.returncode == 0, out.stderr
    assert "Vendor identification: STONEWAL" in out.stdout
    assert "Product identification: FAKESG SHIM TEST" in out.stdout
    assert scripted_nexus.target.cdbs[0][0] == cdb.INQUIRY


def test_pr_out_parameter_list_reaches_the_target(scripted_nexus: ScriptedNexus):
    device = SgPersistDevice(scripted_nexus.sg_path, SgRunner(scripted_nexus.environment))
    device.register(0, 0x5354570000000001, Deadline.after(10), ignore_existing=True,
                    all_tg_pt=True)
    assert scripted_nexus.target.data_out == [
        cdb.pr_out_parameters(0, 0x5354570000000001, all_tg_pt=True)]


def test_a_path_without_its_nexus_cannot_be_opened(scripted_nexus: ScriptedNexus):
    device = SgPersistDevice(scripted_nexus.unserved_path, SgRunner(scripted_nexus.environment))
    with pytest.raises(DeviceError, match="exit 56"):  # 50 + ENXIO
        device.read_keys(Deadline.after(10))


def test_a_broken_map_fakes_nothing_and_says_so(tmp_path: Path, shim_library: Path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"devices": [{"path": "/x/sdb", "kind": "tape"}]}')
    out = subprocess.run(["sg_turs", "/x/sdb"], capture_output=True, text=True, timeout=30,
                         env={**os.environ, **shim_environment(shim_library, broken)})
    assert "fakesg: bad map" in out.stderr
    assert out.returncode == 52  # 50 + ENOENT: the real file system answered


def test_build_is_cached_by_source(tmp_path: Path, shim_library: Path):
    first = build_shim(tmp_path)
    built_at = first.stat().st_mtime_ns
    assert build_shim(tmp_path) == first and first.stat().st_mtime_ns == built_at
    assert first.name == shim_library.name  # same source, same name, wherever built
    changed = tmp_path / "fakesg.c"
    changed.write_text(SHIM_SOURCE.read_text() + "\n/* changed */\n")
    assert build_shim(tmp_path, changed) != first


def test_map_entries_are_checked():
    with pytest.raises(ValueError, match="kind"):
        ShimDevice("/x/sdb", "tape", "/tmp/s", "id", 0)
    with pytest.raises(ValueError, match="absolute"):
        ShimDevice("sdb", "sg", "/tmp/s", "id", 0)
    with pytest.raises(ValueError, match="107"):
        ShimDevice("/x/sdb", "sg", "/" + "s" * 120, "id", 0)
    with pytest.raises(ValueError, match="share a path"):
        write_device_map(Path("/nonexistent/map.json"), [
            ShimDevice("/x/sdb", "sg", "/tmp/s", "a", 0),
            ShimDevice("/x/sdb", "block", "/tmp/s", "b", 1)])
