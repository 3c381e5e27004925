"""The worker's reconciliation schedule, as arq itself computes the run times from it.

`/readyz` and the stale-reconciliation alert expect a successful pass within three intervals, so
the schedule must never leave more than RECONCILE_INTERVAL_SECONDS between two passes; an
interval a clock face cannot express is rounded towards more passes, never fewer.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.constants import JOB_RECONCILE
from tests.examples import examples
from workers.functions import cron_jobs

START = datetime(2026, 3, 28, 22, 59, 58, tzinfo=UTC)  # near midnight, the hour and a DST change


def _gaps(interval: int) -> list[float]:
    """Seconds between successive runs, over one cycle of the clock face (a minute, hour or day)."""
    cycle = 60 if interval < 60 else 3600 if interval < 3600 else 24 * 3600
    runs = max(5, min(40, -(-cycle // interval) + 2))
    (job,) = cron_jobs(interval)
    moments = []
    previous = START
    for _ in range(runs):
        job.calculate_next(previous)
        assert job.next_run is not None
        moments.append(job.next_run)
        previous = job.next_run
    return [(later - earlier).total_seconds() for earlier, later in zip(moments, moments[1:], strict=False)]


@pytest.mark.parametrize("interval", [30, 60, 300, 600, 900, 3600, 7200, 6 * 3600])
def test_an_interval_the_clock_divides_is_kept_exactly(interval: int) -> None:
    assert set(_gaps(interval)) == {interval}


@settings(max_examples=examples(40), deadline=None)
@given(interval=st.integers(min_value=30, max_value=2 * 24 * 3600))
def test_no_interval_leaves_longer_than_itself_between_passes(interval: int) -> None:
    gaps = _gaps(interval)
    assert max(gaps) <= interval
    # Rounded towards more passes, but not wildly more: on average at least half the interval.
    assert sum(gaps) / len(gaps) >= min(interval, 24 * 3600) / 2


def test_one_reconcile_job_per_slot_with_the_job_timeout() -> None:
    (job,) = cron_jobs(300, timeout_seconds=45)
    assert job.name == JOB_RECONCILE
    assert job.unique  # every worker schedules the slot; exactly one runs it
    assert job.timeout_s == 45
