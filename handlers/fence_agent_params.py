"""What `fence_stonewall` accepts: its parameter table, and the two ways in (Pacemaker's
`key=value` lines on stdin, options on the command line for people).

One table serves the metadata, the option parser and the stdin reader, so the three never
disagree. Rules (fence-agents doc/FenceAgentAPI.md, and what pacemaker-fenced sends,
reference/pacemaker.md A.1):
- stdin is read only when there are no arguments, as bytes up to MAX_STDIN_BYTES and EOF
  within STDIN_TIMEOUT; longer input, input that is not UTF-8 or that never ends is refused,
  never cut (a line cut at a limit, `plug=node-ab` -> `plug=node-a`, would be believed).
- blank lines and lines starting with `#` are skipped; each line splits at its first `=`; the
  last value of a repeated key wins; unknown keys are ignored with a warning on stderr, as
  fence-agents do (Pacemaker sends every device attribute, in hash order), but Pacemaker's
  own `pcmk_*` keys silently. The warning names the key, never its value (it may be a secret).
- `-` and `_` are the same in every name (`drbd-resources` = `drbd_resources`). Names are
  case-sensitive and the action's value is not, as in fence-agents' library (fencing.py
  `check_input()` lower-cases the action; its stdin reader matches names as written).
- The target is `plug`, else `port`, else `nodename`: plug/port carry what `pcmk_host_map`
  made of the cluster node name (an operator's mapping to stonewall's node names), nodename is
  always the cluster name; Pacemaker up to 3.0.0 sends `port`, later ones `plug`.
"""
from __future__ import annotations

import argparse
import math
import os
import re
import select
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from stonewall.clock import Deadline
from stonewall.messages import printable, quoted
from stonewall import __version__

DEFAULT_TIMEOUT = 15.0  # below Pacemaker's default pcmk_off_timeout (20 s), so we answer first
MAX_TIMEOUT = 3600.0
# Pacemaker sends a few hundred bytes (every device attribute, a host map of 32 nodes is ~1 KB);
# more is not a fence request.
MAX_STDIN_BYTES = 64 * 1024
STDIN_TIMEOUT = 5.0  # pacemaker-fenced writes the lines and closes the pipe at once
MAX_DELAY = 3600.0
_TRUE, _FALSE = ("1", "yes", "on", "true"), ("0", "no", "off", "false")  # fence-agents' booleans
PACEMAKER_PREFIX = "pcmk_"  # Pacemaker's own device parameters (pcmk_host_list, ...)

ACTIONS = ("off", "on", "status", "monitor", "list", "metadata", "validate-all", "manpage")
ACTION_ALIASES = {"meta-data": "metadata"}  # OCF spelling, accepted like fence-agents do
_LIST_SEPARATORS = re.compile(r"[\s,;]+")


class AgentUsageError(ValueError):
    """The input is not a request this agent can act on (exit 1, nothing done)."""


@dataclass(frozen=True)
class AgentParameter:
    """One parameter as the metadata declares it and the command line spells it."""

    name: str
    shortdesc: str
    placeholder: str | None  # the value's name in `--option=[placeholder]`; None: a flag
    short: str | None = None  # one-letter option, e.g. "o" for -o
    content: str = "string"  # metadata content type: string | second | boolean
    default: str | None = None
    deprecated: bool = False
    obsoletes: str | None = None
    long: str | None = None  # long option when it is not the name (port is spelt --plug)

    @property
    def long_option(self) -> str:
        return "--" + (self.long or self.name).replace("_", "-")

    @property
    def getopt(self) -> str:
        """The `mixed` text of the metadata's getopt element."""
        long_form = (self.long_option if self.placeholder is None
                     else f"{self.long_option}=[{self.placeholder}]")
        return f"-{self.short}, {long_form}" if self.short else long_form


_TARGET_TEXT = "Name of the node to fence or unfence (a node name in the stonewall configuration)."

PARAMETERS: tuple[AgentParameter, ...] = (
    AgentParameter("action", "Fencing action: off, on, status, monitor, list, metadata or "
                   "validate-all (there is no reboot: this is fabric fencing).",
                   "action", short="o"),
    AgentParameter("plug", _TARGET_TEXT, "nodename", short="n", obsoletes="port"),
    AgentParameter("port", _TARGET_TEXT, "nodename", short="n", deprecated=True, long="plug"),
    AgentParameter("nodename", "The target's cluster node name (Pacemaker always sends it); "
                   "used when neither plug nor port is given.", "nodename"),
    AgentParameter("config", "The stonewall configuration file (default: $STONEWALL_CONFIG, "
                   "else /etc/stonewall/cluster.yaml).", "path", short="c"),
    AgentParameter("luns", "LUNs this device covers: configured LUN names separated by commas "
                   "or spaces (default: every configured LUN).", "names"),
    AgentParameter("drbd_resources", "DRBD resources whose LUNs this device covers (added to "
                   "luns).", "names"),
    AgentParameter("guests", "Guests whose LUNs this device covers (added to luns).", "names"),
    AgentParameter("timeout", "Seconds one action may take before it counts as failed.",
                   "seconds", short="t", content="second", default=f"{DEFAULT_TIMEOUT:g}"),
    # fence-agents' standard options (fencing.py all_opt): same names, spellings and types.
    AgentParameter("delay", "Wait this many seconds before fencing (off) is started; the "
                   "timeout starts after it.", "seconds", content="second", default="0"),
    AgentParameter("verbose", "Verbose mode: after each decision line, one line with its "
                   "evidence (per-LUN results).", None, short="v", content="boolean"),
    AgentParameter("debug_file", "Also append every line written to stderr to this file.",
                   "debugfile", short="D"),
)
_NAMES = frozenset(parameter.name for parameter in PARAMETERS)


@dataclass(frozen=True)
class AgentRequest:
    """One validated call of the agent."""

    action: str
    target: str | None  # plug, else port, else nodename
    target_source: str | None  # which of the three it came from
    config_path: str | None  # None: $STONEWALL_CONFIG, else the default path
    luns: tuple[str, ...] = ()
    drbd_resources: tuple[str, ...] = ()
    guests: tuple[str, ...] = ()
    timeout: float = DEFAULT_TIMEOUT
    delay: float = 0.0  # seconds to wait before `off`
    verbose: bool = False
    debug_file: str | None = None
    ignored: tuple[str, ...] = ()  # unknown stdin keys (not pcmk_*), to warn about

    @property
    def scoped(self) -> bool:
        """True when the device covers named LUNs, resources or guests (not every LUN)."""
        return bool(self.luns or self.drbd_resources or self.guests)


def normalise_name(name: str) -> str:
    return name.strip().replace("-", "_")


def parse_stdin_lines(text: str) -> dict[str, str]:
    """The parameters in Pacemaker's `key=value` lines (unknown keys included)."""
    parameters: dict[str, str] = {}
    # Lines end at "\n" only, as Pacemaker writes them and fence-agents read them:
    # str.splitlines() would also split at "\x1c", "\x85" or "\u2028" inside a value, and
    # such a value could then add a parameter of its own.
    for raw in text.split("\n"):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, separator, value = line.partition("=")
        if not separator or not name.strip():
            raise AgentUsageError(f"stdin line {quoted(line)} is not key=value")
        parameters[normalise_name(name)] = value.strip()
    return parameters


def read_stdin(stream: BinaryIO, deadline: Deadline) -> str:
    """All of `stream` (a pipe or file) as text; AgentUsageError when it is longer than
    MAX_STDIN_BYTES, is not UTF-8, or does not end before `deadline`."""
    descriptor = stream.fileno()
    poller = select.poll()
    poller.register(descriptor, select.POLLIN)
    data = bytearray()
    while True:
        # A writer that trickles bytes must not keep us past the deadline either.
        if deadline.expired() or not poller.poll(int(deadline.remaining() * 1000)):
            raise AgentUsageError(f"stdin did not end within {STDIN_TIMEOUT:g} s; expected "
                                  "key=value lines and the end of input")
        chunk = os.read(descriptor, MAX_STDIN_BYTES + 1 - len(data))
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_STDIN_BYTES:
            raise AgentUsageError(f"stdin is longer than {MAX_STDIN_BYTES} bytes; refused "
                                  "rather than cut (Pacemaker sends a few hundred)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise AgentUsageError(f"stdin is not UTF-8 text (byte {err.start}); refused") from None


class _RaisingParser(argparse.ArgumentParser):
    """argparse that raises instead of exiting 2: a fence agent's failure status is 1."""

    def error(self, message: str) -> None:  # type: ignore[override]
        # One line: argparse quotes the offending argument as given, control characters and
        # newlines included.
        raise AgentUsageError(printable(message))


def option_parser() -> argparse.ArgumentParser:
    """The command-line parser built from PARAMETERS (both `-` and `_` spellings)."""
    parser = _RaisingParser(
        prog="fence_stonewall", allow_abbrev=False,
        description="Pacemaker fence agent for stonewall: storage fencing through SCSI-3 "
                    "persistent reservations, done by this node's session holder. Without "
                    "arguments it reads key=value lines on stdin, as pacemaker-fenced sends them.")
    # fence-agents print only the version number for -V.
    parser.add_argument("-V", "--version", action="version", version=__version__,
                        help="print the version and exit")
    for parameter in PARAMETERS:
        if parameter.name == "port":
            continue  # same option as plug; `port` exists only for stdin and the metadata
        spellings = [parameter.long_option]
        underscored = parameter.long_option.replace("-", "_")
        if underscored[2:] != parameter.long_option[2:]:
            spellings.append("--" + underscored[2:])
        if parameter.short:
            spellings.insert(0, "-" + parameter.short)
        if parameter.name == "plug":
            spellings.append("--port")
        if parameter.placeholder is None:  # a flag; -vv counts like fence-agents' -v -v
            parser.add_argument(*spellings, dest=parameter.name, action="count",
                                help=parameter.shortdesc)
        else:
            parser.add_argument(*spellings, dest=parameter.name,
                                metavar=parameter.placeholder.upper(), help=parameter.shortdesc)
    return parser


def parse_arguments(argv: Sequence[str]) -> dict[str, str]:
    """The parameters given on the command line (a flag given at least once reads "1")."""
    namespace = option_parser().parse_args(list(argv))
    return {name: "1" if isinstance(value, int) else value
            for name, value in vars(namespace).items() if value}


def split_names(text: str) -> tuple[str, ...]:
    """Names separated by commas, semicolons or white space, in order, without repeats."""
    return tuple(dict.fromkeys(word for word in _LIST_SEPARATORS.split(text) if word))


def _seconds(name: str, text: str | None, default: float, *, zero: bool, limit: float) -> float:
    if text is None or not text.strip():
        return default
    try:
        value = float(text.strip().removesuffix("s"))
    except ValueError:
        raise AgentUsageError(f"{name} {quoted(text)} is not a number of seconds") from None
    if not math.isfinite(value) or not (0 <= value if zero else 0 < value) or value > limit:
        lower = "at least 0" if zero else "more than 0"
        raise AgentUsageError(f"{name} {quoted(text)} is out of range; expected {lower} and at "
                              f"most {limit:g} seconds")
    return value


def _flag(name: str, text: str | None) -> bool:
    if text is None or text.strip().lower() in _FALSE:
        return False
    if text.strip().lower() in _TRUE:
        return True
    raise AgentUsageError(f"{name} {quoted(text)} is not a boolean; expected one of "
                          f"{', '.join(_TRUE + _FALSE)}")


def _action(text: str | None) -> str:
    if text is None or not text.strip():
        raise AgentUsageError("no action given (action=... on stdin, or -o ACTION); this agent "
                              "has no default action")
    action = text.strip().lower()  # fence-agents lower-case the action (check_input)
    action = ACTION_ALIASES.get(action, action)
    if action == "reboot":
        raise AgentUsageError("action 'reboot' is not supported: fence_stonewall is fabric "
                              "fencing (off, then on after the node restarted)")
    if action not in ACTIONS:
        raise AgentUsageError(f"unknown action {quoted(text)}; expected one of "
                              f"{', '.join(ACTIONS)}")
    return action


def _target(parameters: Mapping[str, str]) -> tuple[str | None, str | None]:
    for source in ("plug", "port", "nodename"):
        value = parameters.get(source, "").strip()
        if value:
            return value, source
    return None, None


def build_request(parameters: Mapping[str, str]) -> AgentRequest:
    """The request the parameters describe; AgentUsageError when they describe none."""
    known = {name: value for name, value in parameters.items() if name in _NAMES}
    target, source = _target(known)
    return AgentRequest(
        action=_action(known.get("action")),
        target=target,
        target_source=source,
        config_path=known.get("config", "").strip() or None,
        luns=split_names(known.get("luns", "")),
        drbd_resources=split_names(known.get("drbd_resources", "")),
        guests=split_names(known.get("guests", "")),
        timeout=_seconds("timeout", known.get("timeout"), DEFAULT_TIMEOUT, zero=False,
                         limit=MAX_TIMEOUT),
        delay=_seconds("delay", known.get("delay"), 0.0, zero=True, limit=MAX_DELAY),
        verbose=_flag("verbose", known.get("verbose")),
        debug_file=known.get("debug_file", "").strip() or None,
        ignored=tuple(name for name in parameters
                      if name not in _NAMES and not name.startswith(PACEMAKER_PREFIX)),
    )


def read_request(argv: Sequence[str], stdin_text: str | None) -> AgentRequest:
    """The request from the command line, or from stdin when there are no arguments."""
    if argv:
        return build_request(parse_arguments(argv))
    if stdin_text is None:
        raise AgentUsageError("no arguments and no key=value lines on stdin; try --help")
    return build_request(parse_stdin_lines(stdin_text))


def stdin_request_text(stream: BinaryIO) -> str | None:
    """Pacemaker's key=value lines from `stream`; None at a terminal (a person gave no
    arguments). Raises AgentUsageError as read_stdin does."""
    if stream.isatty():
        return None
    return read_stdin(stream, Deadline.after(STDIN_TIMEOUT))
