"""The one backoff: exponential, capped, equal jitter, reset."""

from __future__ import annotations

import random

import pytest

from drivers.backoff import Backoff


def test_delays_grow_exponentially_within_equal_jitter_and_are_capped() -> None:
    b = Backoff(0.5, 8.0, rng=random.Random(1))
    delays = [b.next_delay() for _ in range(10)]
    ceilings = [min(8.0, 0.5 * 2**n) for n in range(10)]
    for d, c in zip(delays, ceilings, strict=True):
        assert c / 2 <= d <= c
    assert b.attempt == 10
    assert max(delays) <= 8.0


def test_reset_starts_again_from_the_initial_delay() -> None:
    b = Backoff(1.0, 60.0, rng=random.Random(2))
    for _ in range(20):
        b.next_delay()
    b.reset()
    assert 0.5 <= b.next_delay() <= 1.0


def test_jitter_spreads_clients() -> None:
    delays = {round(Backoff(4.0, 4.0, rng=random.Random(seed)).next_delay(), 3) for seed in range(20)}
    assert len(delays) > 10
    assert all(2.0 <= d <= 4.0 for d in delays)


@pytest.mark.parametrize(("initial", "maximum"), [(0.0, 1.0), (-1.0, 1.0), (2.0, 1.0)])
def test_nonsense_bounds_are_refused(initial: float, maximum: float) -> None:
    with pytest.raises(ValueError, match="backoff needs"):
        Backoff(initial, maximum)
