"""How much each fuzzer may spend: hypothesis settings per kind of example.

The default profile is the one CI runs: derandomized (the same examples on every run, so a
failure is reproducible from the test's name alone), no example database, and budgets that
keep the whole fuzz folder well under 60 s on a loaded 2-core machine. Set
STONEWALL_FUZZ=explore to search with fresh random examples and 20 times the budget.
"""
from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

EXPLORE = os.environ.get("STONEWALL_FUZZ") == "explore"
_SCALE = 20 if EXPLORE else 1


def pure(examples: int = 150) -> settings:
    """A pure function: hundreds of examples; one that takes seconds hangs (a regex gone
    quadratic, a loop without end). The slowest legitimate example measured is expat
    refusing a 'billion laughs' XML (0.2 s); the deadline leaves room for a loaded machine.
    A function-scoped fixture (a scratch file, a socket) is shared by the examples of one
    test, which reset what they use."""
    return settings(max_examples=examples * _SCALE, deadline=2500, derandomize=not EXPLORE,
                    database=None, suppress_health_check=[HealthCheck.too_slow,
                                                          HealthCheck.function_scoped_fixture])


def process(examples: int = 8) -> settings:
    """A real process per example (Python start-up ~0.1-0.3 s): a handful; the deadline is
    the process's own time limit plus start-up on a loaded machine."""
    return settings(max_examples=examples * _SCALE, deadline=30_000, derandomize=not EXPLORE,
                    database=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture,
                                           HealthCheck.filter_too_much])
