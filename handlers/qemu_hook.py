"""The libvirt `qemu` hook's entry point (`stonewall vm hook run`): read the domain XML on
stdin, judge the call (vm/hook.py), print at most one line to stderr, return libvirt's exit
status. Never calls libvirt; never writes to stdout."""
from __future__ import annotations

from typing import Callable, Sequence, TextIO

from stonewall.messages import printable
from stonewall.clock import SYSTEM_CLOCK, Clock, Deadline
from stonewall.config.model import ClusterConfig
from stonewall.holder.api import Holder
from stonewall.storage.view import ReadViews
from stonewall.vm.hook import (
    DEFAULT_TIMEOUT, EXIT_REFUSED, EXIT_USAGE, HookDecision, HookUsageError, decide,
    parse_hook_argv)


def hook_main(argv: Sequence[str], stdin: TextIO, stderr: TextIO, *,
              load_config: Callable[[], ClusterConfig], node_name: str, read_views: ReadViews,
              timeout: float = DEFAULT_TIMEOUT, clock: Clock = SYSTEM_CLOCK,
              holder: Callable[[ClusterConfig], Holder] | None = None) -> int:
    """The hook's entry: read stdin, decide, print at most one line to stderr, return the
    exit status for libvirt."""
    deadline = Deadline.after(timeout, clock)
    # Read all of stdin even when the operation is let through, so libvirt's write of the XML
    # never meets a closed pipe.
    domain_xml = stdin.read()
    try:
        call = parse_hook_argv(argv)
    except HookUsageError as error:
        print(f"stonewall: {error}", file=stderr)
        return EXIT_USAGE
    try:
        decision = decide(call, domain_xml, load_config=load_config, node_name=node_name,
                          read_views=read_views, deadline=deadline, holder=holder)
    except Exception as error:  # a bug must not let a start through; decide() returns
        # before anything can fail for the operations it lets through, so only judged ones get here
        decision = HookDecision(EXIT_REFUSED, "stonewall: internal error judging "
                                f"{printable(f'{call.operation} {call.sub_operation} of ')}"
                                f"{printable(call.guest)}: {error!r}")
    if decision.message:
        print(decision.message, file=stderr)
    return decision.exit_code
