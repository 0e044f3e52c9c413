"""Fuzzing the parsers of what sg3_utils (sg_persist, mpathpersist) and multipath-tools
(multipathd, multipath -ll) print: text recorded from the real tools, changed a little, is
read as typed values or refused with the parser's own error, never misread and never the
cause of another exception. A misread key list could pass a live node for a fenced one."""
from __future__ import annotations

import json
import re
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from stonewall.storage.multipath.errors import MultipathOutputError
from stonewall.storage.multipath.multipathd import parse_maps_json, parse_paths_raw
from stonewall.storage.scsi.responses import ResponseFormatError
from stonewall.storage.scsi.sg_output import (
    data_in_length, parse_full_status_hex, parse_full_status_text,
    parse_read_keys, parse_read_reservation, parse_report_capabilities, raw_sense,
    transport_failure)

from ..scsi.sg_lab import load_runs
from . import budget

RUNS = [run for name in ("reference-session.txt", "captured-scripted.txt",
                         "mpathpersist-format.txt") for run in load_runs(name)]
SG_STDOUT = sorted({run.stdout for run in RUNS if run.stdout.strip()})
SG_STDERR = sorted({run.stderr for run in RUNS if run.stderr.strip()})
MULTIPATH = Path(__file__).resolve().parents[1] / "multipath" / "fixtures"
MAPS_JSON = (MULTIPATH / "multipathd-show-maps-json-v0.1.json").read_text()
PATHS_RAW = ("sdf|2:0:0:2|active|ready|running|mpatha|3620000007355abb3b8950167b5790928\n"
             "sdi|2:0:1:2|failed|i/o pending|offline|mpatha|3620000007355abb3b8950167b5790928\n"
             "sda|0:0:0:0|undef|undef|unknown|[orphan]|\n")

# What a change can put in: other scripts' digits, huge numbers, separators, lines of the
# other tool's dialect, control characters, nothing.
pieces = st.one_of(
    st.sampled_from(["٣", "１", "0x", "0x" + "f" * 17, "9" * 5000, "|", ",", ":", "=",
                     "  ", "\t", "\x00", "\x1b[1m", "LU_SCOPE", "scope: 1", "type: 5",
                     "Key=0x1", "Key = 0x1", "[undef]", "#:#:#:#", "-", "`-", "(", ")"]),
    st.text(max_size=6))


@st.composite
def changed(draw: st.DrawFn, texts: list[str]) -> str:
    """One of `texts`, with a few lines or characters changed."""
    text = draw(st.sampled_from(texts))
    lines = text.splitlines(keepends=True) or [""]
    for _ in range(draw(st.integers(1, 4))):
        index = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["insert", "replace", "drop", "repeat", "splice",
                                       "number", "number"]))
        line = lines[index]
        if action == "number":  # a number as no tool prints it: huge, or another script's
            lines[index] = re.sub(r"[0-9]+", draw(st.sampled_from(["9" * 5000, "٣", "１２"])),
                                  line, count=1)
        elif action == "insert":
            at = draw(st.integers(0, len(line)))
            lines[index] = line[:at] + draw(pieces) + line[at:]
        elif action == "replace" and line:
            at = draw(st.integers(0, len(line) - 1))
            lines[index] = line[:at] + draw(pieces) + line[at + 1:]
        elif action == "drop":
            lines[index] = ""
        elif action == "repeat":
            lines.insert(index, line)
        else:
            lines[index] = draw(st.sampled_from(SG_STDOUT)).splitlines(True)[0]
    return "".join(lines)


SG_PARSERS = (parse_read_keys, parse_read_reservation, parse_report_capabilities,
              parse_full_status_hex, parse_full_status_text)


@budget.pure(500)
@given(text=st.one_of(changed(SG_STDOUT), st.text(max_size=80)))
def test_sg_persist_stdout_is_typed_values_or_an_sg_output_error(text: str) -> None:
    for parse in SG_PARSERS:
        try:
            parse(text)
        except ResponseFormatError:  # SgOutputError, or the dumped bytes break SPC-4's layout
            pass


@budget.pure(300)
@given(text=st.one_of(changed(SG_STDERR), st.text(max_size=80)))
def test_sg_persist_stderr_helpers_never_fail(text: str) -> None:
    sense = raw_sense(text)
    assert sense is None or isinstance(sense, bytes)
    length = data_in_length(text)
    assert length is None or 0 <= length < 2**32
    failure = transport_failure(text)
    assert failure is None or isinstance(failure, str)


@st.composite
def maps_json(draw: st.DrawFn) -> str:
    document = json.loads(MAPS_JSON)
    replacements = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                             st.text(max_size=8), st.just([]), st.just({}), st.just([[]]))
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(["top", "map", "group", "path"]))
        target: object = document
        for level, key in (("map", "maps"), ("group", "path_groups"), ("path", "paths")):
            inner = target.get(key) if isinstance(target, dict) else None
            if where == "top" or not isinstance(inner, list) or not inner:
                break
            target = inner[0]
            if where == level:
                break
        if isinstance(target, dict) and target:
            target[draw(st.sampled_from(sorted(target)))] = draw(replacements)
    return json.dumps(document)


@budget.pure(300)
@given(text=st.one_of(maps_json(), changed([MAPS_JSON]), st.text(max_size=60),
                      st.integers(1, 30_000).map(lambda depth: "[" * depth + "]" * depth),
                      st.just(MAPS_JSON.replace('"major_version": 0',
                                                '"major_version": ' + "9" * 5000))))
def test_show_maps_json_is_maps_or_a_multipath_output_error(text: str) -> None:
    try:
        maps = parse_maps_json(text)
    except MultipathOutputError:
        return
    assert all(isinstance(m.name, str) and m.wwid is not None for m in maps)


@budget.pure(300)
@given(text=st.one_of(changed([PATHS_RAW]), st.text(max_size=60)))
def test_paths_raw_is_paths_or_a_multipath_output_error(text: str) -> None:
    try:
        parse_paths_raw(text)
    except MultipathOutputError:
        pass
