"""What a fence agent accepts, from its own `-o metadata` (the fence-agent API's XML), and the
options of a configured device checked against it.

Agents describe every parameter: `required="1"`, `deprecated="1"` for an old spelling, and
`obsoletes="old"` on the new one (fence-agents 4.x: `ip` obsoletes `ipaddr`, `plug`
obsoletes `port`); a required parameter is satisfied by either spelling. Agents accept
`snmp-version` for `snmp_version` on stdin, so names are compared with '-' read as '_'.
Running an agent for its metadata costs a Python start-up (~0.2 s), so the XML is cached in a
directory, keyed by the program's path, size and modification time: a package upgrade
changes those, and the next check reads the new metadata.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import os
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

from stonewall.clock import Deadline
from stonewall.config.model import AgentDevice
from stonewall.power.agent import AGENT_PATH, agent_program
from stonewall.process import ProcessError, run_process

# Options stonewall itself sets on every call; a configuration may not give them.
RESERVED_OPTIONS = ("action",)
METADATA_TIMEOUT = 15.0


class MetadataError(Exception):
    """The agent's metadata could not be read or is not the API's XML."""


@dataclass(frozen=True)
class AgentParameter:
    name: str
    required: bool
    deprecated: bool
    obsoletes: str | None
    choices: tuple[str, ...]  # a `select` parameter's values; () for free text


@dataclass(frozen=True)
class AgentMetadata:
    agent: str
    parameters: dict[str, AgentParameter]


def normal(name: str) -> str:
    return name.replace("-", "_")


def parse_metadata(agent: str, text: str) -> AgentMetadata:
    """The parameters in an agent's metadata XML; MetadataError when it is not that."""
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as err:
        raise MetadataError(f"{agent} -o metadata is not XML: {err}") from None
    if root.tag != "resource-agent":
        raise MetadataError(f"{agent} -o metadata has no <resource-agent> element")
    parameters = {}
    for item in root.iter("parameter"):
        name = item.get("name")
        if not name:
            continue
        content = item.find("content")
        choices = tuple(option.get("value", "") for option in content.iter("option")) \
            if content is not None and content.get("type") == "select" else ()
        parameters[normal(name)] = AgentParameter(
            normal(name), item.get("required") == "1", item.get("deprecated") == "1",
            normal(item.get("obsoletes")) if item.get("obsoletes") else None, choices)
    return AgentMetadata(agent, parameters)


class MetadataCache:
    """Agent metadata, read once per program version; `directory` None keeps it in memory
    only (a checker that may not write the state directory)."""

    def __init__(self, directory: str | None, path: str = AGENT_PATH) -> None:
        self.directory = Path(directory) if directory else None
        self.path = path
        self._memory: dict[str, AgentMetadata] = {}

    def get(self, agent: str) -> AgentMetadata:
        """The metadata of `agent`; AgentNotInstalled or MetadataError."""
        program = agent_program(agent, self.path)
        status = os.stat(program)
        key = hashlib.sha256(f"{program}\0{status.st_size}\0{status.st_mtime_ns}".encode()
                             ).hexdigest()[:24]
        if key in self._memory:
            return self._memory[key]
        text = self._cached(key)
        if text is None:
            text = self._run(agent, program)
            self._store(key, agent, text)
        metadata = parse_metadata(agent, text)
        self._memory[key] = metadata
        return metadata

    def _run(self, agent: str, program: str) -> str:
        try:
            done = run_process([program, "-o", "metadata"], Deadline.after(METADATA_TIMEOUT),
                               env={"PATH": self.path, "LC_ALL": "C.UTF-8"},
                               output_limit=4 * 1024 * 1024)
        except ProcessError as err:
            raise MetadataError(f"{agent} -o metadata: {err}") from None
        if done.timed_out or done.returncode != 0:
            how = "did not finish" if done.timed_out else f"exited {done.returncode}"
            raise MetadataError(f"{agent} -o metadata {how}")
        return done.text()

    def _cached(self, key: str) -> str | None:
        if self.directory is None:
            return None
        try:
            return json.loads((self.directory / f"{key}.json").read_text())["metadata"]
        except (OSError, ValueError, KeyError):
            return None

    def _store(self, key: str, agent: str, text: str) -> None:
        if self.directory is None:
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            temporary = self.directory / f"{key}.tmp"
            temporary.write_text(json.dumps({"agent": agent, "metadata": text}))
            os.replace(temporary, self.directory / f"{key}.json")
        except OSError:
            pass  # a cache that cannot be written only costs the next check a start-up


def option_problems(device: AgentDevice, metadata: AgentMetadata) -> list[tuple[str, str]]:
    """(option name or "", message) for every option the agent does not know, every value a
    `select` parameter does not allow, and every required parameter missing."""
    known = metadata.parameters
    problems: list[tuple[str, str]] = []
    given = {normal(name): value for name, value in device.options}
    if device.secret is not None:
        given[normal(device.secret_option)] = ""
        if normal(device.secret_option) not in known:
            problems.append(("secret_option", _unknown(device.secret_option, metadata)))
    for name, value in device.options:
        parameter = known.get(normal(name))
        if normal(name) in RESERVED_OPTIONS:
            problems.append((name, f"{name} is set by stonewall on every call; remove it"))
        elif parameter is None:
            problems.append((name, _unknown(name, metadata)))
        elif parameter.choices and value not in parameter.choices:
            problems.append((name, f"{value!r} is not a value {metadata.agent} accepts for "
                                   f"{name}; expected one of: {', '.join(parameter.choices)}"))
    aliases = {parameter.obsoletes: parameter.name for parameter in known.values()
               if parameter.obsoletes}
    for parameter in known.values():
        if not parameter.required or parameter.deprecated or parameter.name in RESERVED_OPTIONS:
            continue
        spellings = {parameter.name, parameter.obsoletes, aliases.get(parameter.name)} - {None}
        if not spellings & set(given):
            problems.append(("", f"{metadata.agent} requires the option {parameter.name}"))
    return problems


def _unknown(name: str, metadata: AgentMetadata) -> str:
    close = difflib.get_close_matches(normal(name), list(metadata.parameters), n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return (f"{metadata.agent} has no option {name!r}{hint}; its options are listed by "
            f"`{metadata.agent} -o metadata`")
