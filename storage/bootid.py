"""Boots and fencing records: a node whose key was preempted never re-registers itself in
the same boot (DESIGN section 3).

The record lives in the node's state directory: `registered` (boot id when the node last
joined) and `fenced` (boot id in which its key was found preempted). The boot id comes from
the file the config's `paths.boot_id` names: the kernel's /proc/sys/kernel/random/boot_id,
or a file a test host writes (each lab node "boots")."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

def current_boot_id(source: str) -> str:
    """This boot's id, read from `source` (config `paths.boot_id`)."""
    return Path(source).read_text().strip()


@dataclass(frozen=True)
class BootRecord:
    registered_boot: str | None = None
    fenced_boot: str | None = None


class FencedBoot(Exception):
    """This node was fenced in the current boot: joining is refused until it reboots."""


class BootRecords:
    """The node's record file, written atomically."""

    def __init__(self, state_dir: str, boot_id: str) -> None:
        self.path = Path(state_dir) / "boot-record.json"
        self.boot_id = boot_id

    def read(self) -> BootRecord:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return BootRecord()
        return BootRecord(data.get("registered_boot"), data.get("fenced_boot"))

    def _write(self, record: BootRecord) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(record.__dict__))
        os.replace(temporary, self.path)

    def fenced_in_this_boot(self) -> bool:
        return self.read().fenced_boot == self.boot_id

    def check_may_join(self) -> None:
        """Raise FencedBoot if this boot is a fenced one."""
        if self.fenced_in_this_boot():
            raise FencedBoot(f"this node was fenced in boot {self.boot_id}; it may register "
                             "again only after a reboot")

    def mark_registered(self) -> None:
        self._write(BootRecord(self.boot_id, self.read().fenced_boot))

    def mark_fenced(self) -> None:
        self._write(BootRecord(self.read().registered_boot, self.boot_id))
