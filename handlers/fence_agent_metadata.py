"""The metadata `fence_stonewall` prints for `action=metadata`.

Pacemaker's controller asks for it as user `hacluster` (reference/pacemaker.md, B.2 pitfall
1), so this module reads nothing and needs nothing: the XML comes from the parameter table
alone. The layout follows fence-agents' lib/metadata.rng (longdesc and vendor-url required,
every parameter with getopt, content and shortdesc, booleans as 0|1).
"""
from __future__ import annotations

import xml.etree.ElementTree as ET

from stonewall.handlers.fence_agent_params import PARAMETERS

AGENT_NAME = "fence_stonewall"
SHORTDESC = "Storage fencing through SCSI-3 persistent reservations (stonewall)"
LONGDESC = (
    "fence_stonewall fences a node by removing its SCSI-3 persistent reservation key from every "
    "shared LUN the device covers, on every path, arbiter LUNs first, and succeeds only when "
    "the key is verified gone everywhere. The work is done by this node's stonewall session "
    "holder, which keeps the node's registered iSCSI sessions; if the holder is not running "
    "the action fails. 'on' (unfencing) registers the node's own key and runs on the node "
    "itself; it is refused in a boot in which the node was fenced. Keys and LUNs come from the "
    "stonewall configuration file. There is no reboot: this is fabric fencing. Configure the "
    "device with meta provides=unfencing (pcs adds it) and pair it with stonewall's watchdog "
    "service, which resets a node whose key is gone.")
VENDOR_URL = ""  # no public home page yet; the schema requires the element, not a value

# on runs on the target itself and Pacemaker unfences automatically before starting resources
# (fenced_commands.c read_action_metadata; reference/pacemaker.md A.5). No reboot: fabric
# fencing must never have one (FenceAgentAPI.md).
_ACTIONS: tuple[tuple[str, dict[str, str]], ...] = (
    ("on", {"on_target": "1", "automatic": "1"}),
    ("off", {}),
    ("status", {}),
    ("monitor", {}),
    ("list", {}),
    ("metadata", {}),
    ("validate-all", {}),
)


def metadata_xml() -> str:
    """The metadata document, as text ending in a newline."""
    agent = ET.Element("resource-agent", name=AGENT_NAME, shortdesc=SHORTDESC)
    ET.SubElement(agent, "longdesc").text = LONGDESC
    ET.SubElement(agent, "vendor-url").text = VENDOR_URL
    parameters = ET.SubElement(agent, "parameters")
    for parameter in PARAMETERS:
        attributes = {"name": parameter.name, "unique": "0", "required": "0"}
        if parameter.deprecated:
            attributes["deprecated"] = "1"
        if parameter.obsoletes:
            attributes["obsoletes"] = parameter.obsoletes
        element = ET.SubElement(parameters, "parameter", attributes)
        ET.SubElement(element, "getopt", mixed=parameter.getopt)
        content = {"type": parameter.content}
        if parameter.default is not None:
            content["default"] = parameter.default
        ET.SubElement(element, "content", content)
        ET.SubElement(element, "shortdesc", lang="en").text = parameter.shortdesc
    actions = ET.SubElement(agent, "actions")
    for name, attributes in _ACTIONS:
        ET.SubElement(actions, "action", name=name, **attributes)
    ET.indent(agent, space="\t")
    return '<?xml version="1.0" ?>\n' + ET.tostring(agent, encoding="unicode") + "\n"
