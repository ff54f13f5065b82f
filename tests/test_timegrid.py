"""drivers/timegrid.py: periodic loops wake on a shared grid."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from drivers.timegrid import next_slot, until_next_slot


def test_next_slot_is_the_next_multiple() -> None:
    assert next_slot(1_780_475_400.0, 1.0) == 1_780_475_401.0
    assert next_slot(1_780_475_400.3, 5.0) == 1_780_475_405.0
    assert next_slot(12.0, 10.0) == 20.0
    assert until_next_slot(7.25, 1.0) == 0.75


def test_a_wake_up_just_short_of_its_slot_counts_as_on_it() -> None:
    # wall and monotonic time differ by a hair: waking 0.2 ms early must not schedule a second wake-up
    assert next_slot(9.9998, 10.0) == 20.0
    assert next_slot(9.95, 10.0) == 10.0


def test_loops_of_different_periods_meet() -> None:
    now = 1_780_475_403.7
    assert next_slot(now, 1.0) == 1_780_475_404.0
    assert next_slot(next_slot(now, 5.0) - 0.3, 1.0) == next_slot(now, 5.0)  # the 1 s loop is there too


@given(st.floats(0, 2e9), st.sampled_from([0.2, 1.0, 5.0, 10.0, 60.0]))
def test_slot_is_ahead_by_at_most_one_period(now: float, period: float) -> None:
    nxt = next_slot(now, period)
    assert now < nxt <= now + period * 1.001 + 1e-6
    k = nxt / period
    assert math.isclose(k, round(k), rel_tol=0, abs_tol=1e-6 * max(1.0, k))
