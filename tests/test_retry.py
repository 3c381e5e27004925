"""One rule for trying again: backoff with jitter, never before the moment the other side named."""

from __future__ import annotations

import random

import pytest

from app.moneybird.errors import MoneybirdRateLimited, MoneybirdServerError, MoneybirdTimeout
from app.moneybird.ratelimit import RateLimitBusy
from app.retry import RETRY_CAP_SECONDS, TryAgainLater, retry_at_from_header, retry_delay
from app.woocommerce.errors import WooCommerceTransient

NOW = 1_800_000_000.0


def test_every_passing_failure_is_one_kind_of_error() -> None:
    passing: list[TryAgainLater] = [
        MoneybirdTimeout("slow"),
        MoneybirdRateLimited("429", reset_at=NOW + 30),
        WooCommerceTransient("the shop answered 503", method="GET", path="/orders/1", retry_at=NOW + 30),
        RateLimitBusy(retry_at=NOW + 30),
    ]
    assert all(isinstance(error, TryAgainLater) for error in passing)
    assert [error.retry_after_seconds(NOW) for error in passing] == [0.0, 30.0, 30.0, 30.0]


class TestRetryDelay:
    def test_grows_with_tries_and_is_capped(self) -> None:
        rng = random.Random(4)
        early = [retry_delay(job_try=1, error=None, now=NOW, rng=rng) for _ in range(200)]
        late = [retry_delay(job_try=30, error=None, now=NOW, rng=rng) for _ in range(200)]
        assert max(early) <= 5.0
        assert all(1.0 <= d <= RETRY_CAP_SECONDS for d in late)
        assert sum(late) / len(late) > 10 * sum(early) / len(early)

    def test_is_jittered(self) -> None:
        rng = random.Random(5)
        delays = {
            round(retry_delay(job_try=6, error=MoneybirdTimeout("slow"), now=NOW, rng=rng), 3)
            for _ in range(50)
        }
        assert len(delays) > 40

    @pytest.mark.parametrize("job_try", [1, 2, 5, 25])
    def test_never_before_a_rate_limit_reset_even_beyond_the_cap(self, job_try: int) -> None:
        rng = random.Random(job_try)
        for reset_in in (2.0, 280.0, RETRY_CAP_SECONDS + 300):
            error = MoneybirdRateLimited("429", reset_at=NOW + reset_in)
            for _ in range(50):
                assert retry_delay(job_try=job_try, error=error, now=NOW, rng=rng) >= reset_in

    def test_respects_a_server_errors_retry_after(self) -> None:
        error = MoneybirdServerError("503", status=503, retry_at=NOW + 45)
        assert retry_delay(job_try=1, error=error, now=NOW) >= 45

    @pytest.mark.parametrize(
        "error",
        [
            WooCommerceTransient("the shop answered 429", method="GET", path="/orders", retry_at=NOW + 40),
            RateLimitBusy(retry_at=NOW + 40),
        ],
        ids=["shop", "limiter"],
    )
    def test_the_shop_and_the_limiter_are_waited_for_like_moneybird(self, error: TryAgainLater) -> None:
        rng = random.Random(9)
        assert min(retry_delay(job_try=1, error=error, now=NOW, rng=rng) for _ in range(50)) >= 40

    def test_a_scale_shrinks_the_backoff_but_never_the_named_moment(self) -> None:
        rng = random.Random(6)
        backoff = [retry_delay(job_try=10, error=None, now=NOW, scale=0.001, rng=rng) for _ in range(50)]
        assert max(backoff) <= RETRY_CAP_SECONDS * 0.001
        named = MoneybirdRateLimited("429", reset_at=NOW + 20)
        waits = [retry_delay(job_try=10, error=named, now=NOW, scale=0.001, rng=rng) for _ in range(50)]
        assert all(20 <= wait <= 20 + 0.01 for wait in waits)


class TestRetryAtFromHeader:
    def test_reads_epochs_delays_and_dates(self) -> None:
        assert retry_at_from_header("1800000090", now=NOW) == 1_800_000_090
        assert retry_at_from_header("30", now=NOW) == NOW + 30
        assert retry_at_from_header("Fri, 15 Jan 2027 08:00:40 GMT", now=NOW) == 1_800_000_040

    @pytest.mark.parametrize("value", [None, "", "  ", "-5", "soon"])
    def test_names_nothing_when_it_says_nothing(self, value: str | None) -> None:
        assert retry_at_from_header(value, now=NOW) is None
