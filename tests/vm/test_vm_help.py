"""`stonewall vm ... --help`: every level says what it is for, and each command's options
describe that command."""
from __future__ import annotations

import pytest

from stonewall.cli import build_parser


def help_of(capsys: pytest.CaptureFixture[str], *words: str) -> str:
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args([*words, "--help"])
    assert done.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines


@pytest.mark.parametrize(("words", "says"), [
    (("vm",), "a guest may run only on the node that owns every LUN of its storage"),
    (("vm", "hook"), "refuses when this node does not own every LUN of the guest"),
])
def test_vm_and_vm_hook_describe_themselves(capsys, words, says) -> None:
    text = help_of(capsys, *words)
    assert says in text.split("positional arguments:")[0]


def test_each_control_command_explains_its_own_timeout(capsys) -> None:
    def timeout_text(command: str) -> str:
        text = help_of(capsys, "vm", command, "x")
        return text.split("--timeout TIMEOUT", 1)[1].split("exit status:", 1)[0]

    stop, start, takeover = (timeout_text(c) for c in ("stop", "start", "takeover"))
    assert "shut down" in stop and "T_safe" not in stop and "takeover" not in stop
    assert "T_safe" in takeover and "T_safe" not in start
    assert len({stop, start, takeover}) == 3
