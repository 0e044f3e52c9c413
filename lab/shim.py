"""The fakesg shim (tests/shim/fakesg.c): build it, write its device map, and name the
environment that loads it. See lab/nexus.py for the process that answers its SG_IO."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

SHIM_SOURCE = Path(__file__).resolve().parent.parent / "tests" / "shim" / "fakesg.c"
MAP_VARIABLE = "STONEWALL_FAKESG_MAP"
_COMPILE_FLAGS = ("-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC")
_LIBRARIES = ("-ldl", "-lpthread")
_COMPILE_TIMEOUT = 120.0
# The C reader takes a unix socket path of at most sizeof(sun_path) - 1 bytes.
_MAX_SOCKET_PATH = 107


class ShimBuildError(RuntimeError):
    """The shim could not be compiled."""


@dataclass(frozen=True)
class ShimDevice:
    """One entry of the device map: `path` looks like a SCSI device of `kind` ("sg": char
    major 21, or "block": block major 8) and its SG_IO goes to `device_id` at `socket`."""

    path: str
    kind: str
    socket: str
    device_id: str
    minor: int

    def __post_init__(self) -> None:
        if self.kind not in ("sg", "block"):
            raise ValueError(f"{self.path}: kind must be 'sg' or 'block', not {self.kind!r}")
        if not os.path.isabs(self.path):
            raise ValueError(f"{self.path}: fake device paths are absolute")
        if len(self.socket.encode()) > _MAX_SOCKET_PATH:
            raise ValueError(f"{self.socket}: a unix socket path has at most "
                             f"{_MAX_SOCKET_PATH} bytes")
        if not 0 <= self.minor <= 0xFFFF:
            raise ValueError(f"{self.path}: minor {self.minor} out of range")


def build_shim(workdir: Path, source: Path = SHIM_SOURCE) -> Path:
    """Compile `source` into workdir/fakesg-<hash>.so, or return the one built before from
    the same source and flags."""
    text = source.read_bytes()
    digest = hashlib.sha256(text + " ".join(_COMPILE_FLAGS).encode()).hexdigest()[:16]
    library = Path(workdir) / f"fakesg-{digest}.so"
    if library.exists():
        return library
    compiler = shutil.which("gcc")
    if compiler is None:
        raise ShimBuildError("gcc not found: install the Debian packages gcc and libc6-dev")
    library.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the target and rename: concurrent test runs never load half a library.
    handle, partial = tempfile.mkstemp(prefix=".fakesg-", suffix=".so", dir=library.parent)
    os.close(handle)
    try:
        result = subprocess.run(
            [compiler, *_COMPILE_FLAGS, "-o", partial, str(source), *_LIBRARIES],
            capture_output=True, text=True, timeout=_COMPILE_TIMEOUT)
        if result.returncode != 0:
            raise ShimBuildError(f"gcc failed on {source}:\n{result.stderr}")
        os.replace(partial, library)
    except subprocess.TimeoutExpired as exc:
        raise ShimBuildError(f"gcc did not finish within {_COMPILE_TIMEOUT}s") from exc
    finally:
        Path(partial).unlink(missing_ok=True)
    return library


def write_device_map(path: Path, devices: Sequence[ShimDevice]) -> Path:
    """Write the JSON map the shim reads (named by STONEWALL_FAKESG_MAP)."""
    paths = [device.path for device in devices]
    if len(set(paths)) != len(paths):
        raise ValueError("two map entries share a path")
    document = {"devices": [
        {"path": d.path, "kind": d.kind, "socket": d.socket, "device": d.device_id,
         "minor": d.minor} for d in devices]}
    path.write_text(json.dumps(document, indent=1))
    return path


def shim_environment(library: Path, device_map: Path) -> dict[str, str]:
    """The variables that make a process load the shim with `device_map`."""
    return {"LD_PRELOAD": str(library), MAP_VARIABLE: str(device_map)}
