"""A switched PDU or an Ethernet switch on 127.0.0.1 that speaks real SNMP (pysnmp's engine:
v1, v2c communities and SNMPv3 USM users), for Debian's unmodified fence agents.

Models, with the OIDs and values the agents use (fence_apc_snmp, fence_eaton_snmp,
fence_ifmib from fence-agents 4.12):
- `apc-rpdu`: an APC Rack PDU (sysObjectID 1.3.6.1.4.1.318.1.3.4.5). Two outlet tables: the
  status table (rPDUOutletStatusOutletState, read-only, 1 on / 2 off) and the control table
  (rPDUOutletControlOutletCommand, 1 on / 2 off); a command changes the state it reports.
- `eaton-managed`: an Eaton Managed ePDU (1.3.6.1.4.1.534.6.6.6): one table whose entries,
  indexed from 0, are set and read (0 off, 1 on, 2 cycling).
- `ifmib`: a switch's IF-MIB interface table: ifDescr names the ports, ifAdminStatus
  (1 up, 2 down) is read and set.

An outlet (port) can be configured `stuck` at a raw value: it keeps reporting that value and
ignores commands (a relay that failed, or an Eaton outlet caught "cycling"). A mute device
is this process stopped with SIGSTOP by its owner (lab.snmp_process): the port stays bound,
nothing answers.

Run: `python -m stonewall.lab.snmp_device SPEC.json` prints READY once it listens; after
each change it rewrites the spec's `state_file` with every outlet's state.
"""
from __future__ import annotations

import asyncio
import json
import os
import sys
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

Oid = tuple[int, ...]


def oid(text: str) -> Oid:
    return tuple(int(part) for part in text.strip(".").split("."))


@dataclass(frozen=True)
class Model:
    sys_object_id: str
    name_table: str  # the outlet / port name column
    status_table: str
    control_table: str  # the same as status_table where one column is read and set
    on: int
    off: int
    first_index: int  # the table index of outlet 1


MODELS = {
    "apc-rpdu": Model("1.3.6.1.4.1.318.1.3.4.5", "1.3.6.1.4.1.318.1.1.12.3.5.1.1.2",
                      "1.3.6.1.4.1.318.1.1.12.3.5.1.1.4", "1.3.6.1.4.1.318.1.1.12.3.3.1.1.4",
                      on=1, off=2, first_index=1),
    "eaton-managed": Model("1.3.6.1.4.1.534.6.6.6", "1.3.6.1.4.1.534.6.6.6.1.2.2.1.1",
                           "1.3.6.1.4.1.534.6.6.6.1.2.2.1.3", "1.3.6.1.4.1.534.6.6.6.1.2.2.1.3",
                           on=1, off=0, first_index=0),
    "ifmib": Model("1.3.6.1.4.1.8072.3.2.10", "1.3.6.1.2.1.2.2.1.2", "1.3.6.1.2.1.2.2.1.7",
                   "1.3.6.1.2.1.2.2.1.7", on=1, off=2, first_index=1),
}


class Device:
    """The device's objects: a sorted table of OIDs, each with a reader and maybe a writer."""

    def __init__(self, model: Model, outlets: int, stuck: dict[int, int],
                 on_change: Callable[["Device"], None]) -> None:
        self.model, self.stuck, self.on_change = model, stuck, on_change
        self.values = {number: stuck.get(number, model.on) for number in range(1, outlets + 1)}
        self.objects: dict[Oid, tuple[str, Callable[[], Any], Callable[[int], None] | None]] = {
            oid("1.3.6.1.2.1.1.1.0"): ("str", lambda: f"stonewall lab {self._name()}", None),
            oid("1.3.6.1.2.1.1.2.0"): ("oid", lambda: model.sys_object_id, None),
        }
        for number in self.values:
            index = (number - 1 + model.first_index,)
            self.objects[oid(model.name_table) + index] = (
                "str", lambda n=number: f"{'port' if self._name() == 'ifmib' else 'outlet'}-{n}",
                None)
            self.objects[oid(model.status_table) + index] = (
                "int", lambda n=number: self.values[n],
                self._command(number) if model.status_table == model.control_table else None)
            if model.control_table != model.status_table:
                self.objects[oid(model.control_table) + index] = (
                    "int", lambda n=number: self.values[n], self._command(number))
        self.order = sorted(self.objects)

    def _name(self) -> str:
        return next(name for name, model in MODELS.items() if model is self.model)

    def _command(self, number: int) -> Callable[[int], None]:
        def command(value: int) -> None:
            if value not in (self.model.on, self.model.off):
                raise ValueError(value)
            if number not in self.stuck:
                self.values[number] = value
            self.on_change(self)
        return command

    def after(self, name: Oid) -> Oid | None:
        position = bisect_right(self.order, name)
        return self.order[position] if position < len(self.order) else None

    def state(self) -> dict[str, str]:
        """Outlet number -> on, off, or the raw value of anything else."""
        shown = {self.model.on: "on", self.model.off: "off"}
        return {str(n): shown.get(v, f"raw-{v}") for n, v in self.values.items()}


def serve(spec: dict[str, Any]) -> None:
    """Run the SNMP engine for `spec` until killed."""
    from pysnmp.carrier.asyncio.dgram import udp
    from pysnmp.entity import config, engine
    from pysnmp.entity.rfc3413 import cmdrsp, context
    from pysnmp.proto.api import v2c
    from pysnmp.smi import error as smi_error
    from pysnmp.smi import instrum

    state_file = Path(spec["state_file"])

    def write_state(device: Device) -> None:
        temporary = state_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(device.state()))
        os.replace(temporary, state_file)

    device = Device(MODELS[spec["model"]], spec.get("outlets", 2),
                    {int(k): int(v) for k, v in spec.get("stuck", {}).items()}, write_state)
    write_state(device)

    def value(kind: str, raw: Any) -> Any:
        return {"str": v2c.OctetString, "int": v2c.Integer, "oid": v2c.ObjectIdentifier}[kind](raw)

    class Controller(instrum.AbstractMibInstrumController):
        def read_variables(self, *var_binds: Any, **context: Any) -> list[Any]:
            answer = []
            for name, _ in var_binds:
                entry = device.objects.get(tuple(name))
                answer.append((name, value(entry[0], entry[1]()) if entry else
                               v2c.NoSuchInstance()))
            return answer

        def read_next_variables(self, *var_binds: Any, **context: Any) -> list[Any]:
            answer = []
            for name, _ in var_binds:
                following = device.after(tuple(name))
                if following is None:
                    answer.append((name, v2c.EndOfMibView()))
                else:
                    kind, read, _ = device.objects[following]
                    answer.append((v2c.ObjectIdentifier(following), value(kind, read())))
            return answer

        def write_variables(self, *var_binds: Any, **context: Any) -> list[Any]:
            for index, (name, new) in enumerate(var_binds):
                entry = device.objects.get(tuple(name))
                if entry is None or entry[2] is None:
                    raise smi_error.NotWritableError(name=name, idx=index)
                try:
                    entry[2](int(new))
                except (ValueError, TypeError):
                    raise smi_error.WrongValueError(name=name, idx=index) from None
            return self.read_variables(*var_binds)

    asyncio.set_event_loop(asyncio.new_event_loop())
    snmp_engine = engine.SnmpEngine()
    config.add_transport(snmp_engine, udp.DOMAIN_NAME,
                         udp.UdpTransport().open_server_mode((spec.get("host", "127.0.0.1"),
                                                              spec["port"])))
    if spec.get("community"):
        config.add_v1_system(snmp_engine, "lab-area", spec["community"])
    if spec.get("v3_user"):
        config.add_v3_user(snmp_engine, spec["v3_user"], config.USM_AUTH_HMAC96_SHA,
                           spec["v3_auth_key"])
    snmp_context = context.SnmpContext(snmp_engine)
    snmp_context.unregister_context_name(b"")
    snmp_context.register_context_name(b"", Controller())
    for responder in (cmdrsp.GetCommandResponder, cmdrsp.NextCommandResponder,
                      cmdrsp.BulkCommandResponder, cmdrsp.SetCommandResponder):
        responder(snmp_engine, snmp_context)
    snmp_engine.transport_dispatcher.job_started(1)
    print("READY", flush=True)
    snmp_engine.open_dispatcher()


if __name__ == "__main__":
    serve(json.loads(Path(sys.argv[1]).read_text()))
