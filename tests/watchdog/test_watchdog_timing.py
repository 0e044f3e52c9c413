"""The timing model and the petter's judgement, on plain numbers (a simulated clock)."""
from __future__ import annotations

import pytest

from stonewall.config.model import WatchdogSettings
from stonewall.watchdog.loop import CheckOutcome, CheckResult, Evidence, judge, self_fence_reason
from stonewall.config.timing import (
    format_timing_table,
    pet_period,
    settings_problems,
    t_safe,
    timing_problems,
    timing_table,
)

DEFAULTS = WatchdogSettings()  # interval 1, io 2, check_deadline 5, timeout 10, grace 5, margin 2


def test_defaults_are_sound_and_give_t_safe_17s():
    assert settings_problems(DEFAULTS) == []
    assert t_safe(DEFAULTS) == 17


def test_check_deadline_not_below_timeout_is_named_with_its_numbers():
    assert timing_problems(1, 2, 12, 10, 5, 2) == [
        "check_deadline (12s) must be less than timeout (10s)"]


def test_a_check_cycle_longer_than_check_deadline_is_named():
    problems = timing_problems(interval=2, io_deadline=3, check_deadline=5, timeout=10,
                               grace=5, margin=2)
    assert any(p.startswith("interval (2s) + io_deadline (3s) = 5s must be less than "
                            "check_deadline (5s)") for p in problems)


def test_grace_beyond_check_deadline_or_within_one_cycle_is_named():
    assert timing_problems(1, 2, 5, 10, 8, 2) == [
        "grace (8s) must not exceed check_deadline (5s): petting stops at check_deadline, "
        "so guests would be stopped only after that"]
    assert timing_problems(1, 2, 5, 10, 2.5, 2)[0].startswith(
        "grace (2.5s) must be greater than interval (1s) + io_deadline (2s) = 3s")


def test_non_positive_values_are_named_before_anything_else():
    assert timing_problems(0, 2, 5, -1, 5, -0.5) == [
        "interval (0s) must be greater than 0",
        "timeout (-1s) must be greater than 0",
        "margin (-0.5s) must not be negative",
    ]


def test_the_table_for_the_defaults():
    rows = {(r.start, r.end): r.bound for r in timing_table(DEFAULTS)}
    assert rows == {
        ("preemption (storage reachable)", "petting stops, guest stop begins"): 4,
        ("preemption (storage reachable)", "node reset"): 14,
        ("last good check", "petting stops, guest stop begins"): 5,
        ("last good check", "node reset"): 15,
        ("preemption (any failure)", "node reset"): 15,
        ("preemption", "peer may take over (T_safe)"): 17,
        ("service dies without magic close", "node reset"): 10,
    }
    text = format_timing_table(timing_table(DEFAULTS))
    assert text.splitlines()[0].split() == ["from", "to", "at", "most", "formula"]
    assert "check_deadline + timeout + margin" in text and "17s" in text


def test_pet_period_is_a_quarter_timeout_at_most_one_second():
    assert pet_period(DEFAULTS) == 1.0
    assert pet_period(WatchdogSettings(timeout=2)) == 0.5


OWNED = CheckResult(CheckOutcome.OWNED)


def test_a_fresh_good_check_keeps_petting():
    evidence = Evidence(last_owned_at=100.0, last_result=OWNED)
    assert self_fence_reason(104.9, evidence, DEFAULTS) is None


def test_key_gone_self_fences_at_once_even_with_a_fresh_good_check():
    fenced = CheckResult(CheckOutcome.FENCED, "arbiter0: key 0x5357 not registered")
    evidence = Evidence(last_owned_at=100.0, last_result=fenced)
    assert self_fence_reason(100.5, evidence, DEFAULTS) == \
        "key gone (arbiter0: key 0x5357 not registered)"


def test_unreachable_storage_self_fences_when_the_good_check_is_grace_old():
    lost = CheckResult(CheckOutcome.UNREACHABLE, "all paths: connection refused")
    evidence = Evidence(last_owned_at=100.0, last_result=lost)
    assert self_fence_reason(104.99, evidence, DEFAULTS) is None
    assert self_fence_reason(105.0, evidence, DEFAULTS) == (
        "ownership unverified for 5.0s (limit 5s): all paths: connection refused")


def test_no_result_since_the_good_check_means_a_hung_or_dead_checker():
    evidence = Evidence(last_owned_at=100.0, last_result=OWNED)
    assert self_fence_reason(105.2, evidence, DEFAULTS) == (
        "no check result for 5.2s (limit 5s): the checker is hung or dead")


def test_a_good_answer_after_io_deadline_does_not_count():
    late = judge(OWNED, started=10.0, finished=12.5, settings=DEFAULTS)
    assert late.outcome is CheckOutcome.UNREACHABLE and "beyond io_deadline 2s" in late.detail
    assert judge(OWNED, started=10.0, finished=11.9, settings=DEFAULTS) == OWNED


def test_a_late_key_gone_still_counts():
    fenced = CheckResult(CheckOutcome.FENCED)
    assert judge(fenced, started=10.0, finished=19.0, settings=DEFAULTS) == fenced


@pytest.mark.parametrize("grace,limit", [(3.5, 3.5), (5, 5)])
def test_petting_stops_at_the_smaller_of_grace_and_check_deadline(grace, limit):
    settings = WatchdogSettings(grace=grace)
    evidence = Evidence(last_owned_at=0.0, last_result=OWNED)
    assert self_fence_reason(limit - 0.01, evidence, settings) is None
    assert self_fence_reason(limit, evidence, settings) is not None
