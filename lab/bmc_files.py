"""The lab BMC's two files: the state it publishes and the behaviour it is told to have.

Both are small JSON objects replaced atomically (write, then rename), so a reader never
sees half a file. The BMC rewrites the state file on every change; it reads the control
file on every packet, so a change of behaviour applies from the next packet on.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from stonewall.power.protocol import PowerState


class BmcFileError(ValueError):
    """A state or control file that does not hold what it should."""


@dataclass(frozen=True)
class BmcBehaviour:
    mute: bool = False  # drop every packet: no reply at all
    delay: float = 0.0  # seconds to wait before handling each packet
    off_lag: float = 0.0  # seconds between an accepted power-off and the power going off
    status_error: int = 0  # completion code for Get Chassis Status; 0 answers normally
    control_error: int = 0  # completion code for Chassis Control (not executed); 0 obeys

    def __post_init__(self) -> None:
        if self.delay < 0 or self.off_lag < 0:
            raise BmcFileError("delay and off_lag must not be negative")
        if not (0 <= self.status_error <= 0xFF and 0 <= self.control_error <= 0xFF):
            raise BmcFileError("status_error and control_error are completion codes 0..255")


@dataclass(frozen=True)
class BmcState:
    pid: int
    port: int
    power: PowerState
    power_changed_at: float | None = None  # wall clock of the last change of power
    off_commands: int = 0  # Chassis Control power-down commands accepted
    on_commands: int = 0
    killed_pgid: int | None = None  # process group killed when the power went off
    killed_at: float | None = None  # wall clock of that kill
    kill_error: str | None = None


def write_json_atomically(path: Path, document: dict[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(document, sort_keys=True))
    os.replace(temporary, path)


def save_behaviour(path: Path, behaviour: BmcBehaviour) -> None:
    write_json_atomically(path, asdict(behaviour))


def load_behaviour(path: Path) -> BmcBehaviour:
    return _load(path, BmcBehaviour)


def save_state(path: Path, state: BmcState) -> None:
    document = asdict(state)
    document["power"] = state.power.value
    write_json_atomically(path, document)


def load_state(path: Path) -> BmcState:
    state = _load(path, BmcState)
    try:
        return BmcState(**{**asdict(state), "power": PowerState(state.power)})
    except ValueError:
        raise BmcFileError(f"{path}: power {state.power!r} is not on/off/unknown") from None


def _load(path: Path, kind: type) -> Any:
    try:
        document = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise BmcFileError(f"{path}: not JSON ({error})") from None
    known = {f.name for f in fields(kind)}
    if not isinstance(document, dict) or set(document) - known:
        raise BmcFileError(f"{path}: expected an object with keys among {sorted(known)}")
    try:
        return kind(**document)
    except (TypeError, ValueError) as error:
        raise BmcFileError(f"{path}: {error}") from None
