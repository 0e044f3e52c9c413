"""fence_stonewall(8): the page `fence_stonewall -o manpage` prints and the build installs.

Written from what the agent already holds, so the page cannot drift from the program: the
option parser (synopsis, options), the metadata's descriptions and parameter table, and the
action table in the agent's module docstring.
"""
from __future__ import annotations

from stonewall import roff
from stonewall.handlers import fence_agent
from stonewall.handlers.fence_agent_metadata import AGENT_NAME, LONGDESC, SHORTDESC
from stonewall.handlers.fence_agent_params import ACTIONS, PARAMETERS, option_parser


def _actions_text() -> list[str]:
    """The action table of the agent's docstring (from its "Actions" line to the blank line
    that ends it); the bare action names if the docstring has no such table."""
    lines = (fence_agent.__doc__ or "").splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("Actions and exit")),
                 None)
    if start is None:
        return [", ".join(ACTIONS)]
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].strip()), len(lines))
    return [line.rstrip() for line in lines[start + 1:end]]


def _stdin_parameters() -> str:
    return "".join(f".TP\n\\fB{roff.escape(parameter.name)}\\fR\n"
                   f"{roff.inline(parameter.shortdesc)}\n" for parameter in PARAMETERS)


def manpage() -> str:
    """The whole fence_stonewall(8) page in roff."""
    parser = option_parser()
    sections = [
        roff.Section("Synopsis", roff.usage(parser)
                     + roff.preformatted([f"{AGENT_NAME} < key=value lines"])),
        roff.Section("Description", roff.paragraph(LONGDESC)
                     + roff.paragraph(parser.description or "")),
        roff.Section("Actions and exit status", roff.preformatted(_actions_text())),
        roff.Section("Options", roff.options(parser)),
        roff.Section("Stdin parameters",
                     roff.paragraph("Without arguments the agent reads key=value lines on "
                                    "stdin, as pacemaker-fenced sends them; `-` and `_` are "
                                    "the same in every name.") + _stdin_parameters()),
        roff.Section("Files", roff.paragraph(
            "`/etc/stonewall/cluster.yaml`, the cluster configuration; "
            "`/run/stonewall/holder.sock`, the node's session holder; "
            "`/var/log/stonewall/events.jsonl`, the event log.")),
        roff.Section("See also", roff.paragraph(
            "stonewall(8), stonewall-drbd(8), cluster.yaml(5), pcs(8), stonith_admin(8)")),
    ]
    return roff.page(AGENT_NAME, 8, SHORTDESC, sections)
