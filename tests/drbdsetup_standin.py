"""A stand-in for `drbdsetup` on a machine without the DRBD 9 kernel module: it answers
`status --json [RESOURCE]` with a document derived from a real one (tests/drbd/fixtures),
the way drbdsetup prints it. Everything else about DRBD stays real (drbdadm, the handler
environment)."""
from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path
from typing import Any

REAL_SAMPLE = Path(__file__).parent / "drbd" / "fixtures" / "status-ha-cluster-exporter.json"


def split_brain_status(resource: str, my_id: int, peer_id: int, role: str = "Primary",
                       connection: str = "StandAlone") -> list[dict[str, Any]]:
    """The real sample renamed to `resource`, this node `my_id`, its one connection to
    `peer_id` in `connection` state (a split brain leaves DRBD StandAlone)."""
    document = copy.deepcopy(json.loads(REAL_SAMPLE.read_text()))
    status = document[0]
    status.update({"name": resource, "node-id": my_id, "role": role})
    link = status["connections"][0]
    link.update({"peer-node-id": peer_id, "connection-state": connection,
                 "peer-role": "Unknown"})
    for device in link["peer_devices"]:
        device.update({"replication-state": "Off", "peer-disk-state": "DUnknown"})
    return [status]


def install(directory: Path, document: list[dict[str, Any]]) -> Path:
    """`directory/drbdsetup` printing `document` (the resource asked for, or all)."""
    directory.mkdir(parents=True, exist_ok=True)
    data = directory / "drbdsetup-status.json"
    data.write_text(json.dumps(document))
    program = directory / "drbdsetup"
    program.write_text(f"#!{sys.executable}\n" + f'''import json, sys
document = json.load(open({str(data)!r}))
args = sys.argv[1:]
if args[:2] != ["status", "--json"]:
    sys.exit("stand-in drbdsetup: only 'status --json [RESOURCE]'")
wanted = args[2:]
print(json.dumps([r for r in document if not wanted or r["name"] in wanted], indent=2))
''')
    program.chmod(0o755)
    return program


def path_with(directory: Path, environ: dict[str, str] | None = None) -> str:
    """PATH with `directory` first."""
    base = (environ or os.environ).get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    return f"{directory}:{base}"
