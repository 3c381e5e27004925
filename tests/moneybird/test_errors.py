from __future__ import annotations

import pickle
import random

import pytest

from app.moneybird.errors import (
    RETRY_CAP_SECONDS,
    MoneybirdAuthError,
    MoneybirdConfigurationError,
    MoneybirdRateLimited,
    MoneybirdRejected,
    MoneybirdServerError,
    MoneybirdTimeout,
    MoneybirdTransient,
    MoneybirdValidationError,
    describe_error_body,
    retry_delay,
)

NOW = 1_800_000_000.0


class TestDescribeErrorBody:
    def test_symbolic_shape_keeps_the_sentence_and_the_code(self) -> None:
        body = {"error": "record not found", "symbolic": {"id": "not_found"}}
        assert describe_error_body(body) == "record not found (id: not_found)"

    def test_nested_symbolic_is_flattened(self) -> None:
        body = {
            "error": "Contact ID is invalid",
            "symbolic": {"external_sales_invoice": {"contact_id": "invalid"}},
        }
        assert (
            describe_error_body(body) == "Contact ID is invalid (external_sales_invoice.contact_id: invalid)"
        )

    def test_symbolic_shape_without_codes(self) -> None:
        assert describe_error_body({"error": "per_page does not have a valid value"}) == (
            "per_page does not have a valid value"
        )

    def test_field_shape_lists_every_field_and_message(self) -> None:
        body = {
            "error": {"payment_date": ["can't be blank"], "price": ["can't be blank", "is not a number"]},
            "details": {"price": [{"error": "blank"}, {"error": "not_a_number", "value": None}]},
        }
        assert (
            describe_error_body(body)
            == "payment_date: can't be blank; price: can't be blank, is not a number"
        )

    def test_base_errors_read_without_a_field_name(self) -> None:
        body = {"error": {"base": ["must contain a title or description"]}, "details": {}}
        assert describe_error_body(body) == "must contain a title or description"

    def test_text_and_html_bodies_are_shortened(self) -> None:
        assert describe_error_body("Retry later") == "Retry later"
        html = "<html><body>" + "<p>Too Many Requests</p>" * 50 + "</body></html>"
        assert len(describe_error_body(html)) <= 200
        assert describe_error_body(None) == "empty response"


class TestTree:
    def test_auth_is_configuration_not_rejection(self) -> None:
        error = MoneybirdAuthError("token is invalid")
        assert isinstance(error, MoneybirdConfigurationError)
        assert not isinstance(error, MoneybirdRejected | MoneybirdTransient)

    def test_errors_name_the_request_and_survive_pickling(self) -> None:
        # arq pickles the exception of a failed job.
        error = MoneybirdValidationError(
            "price: can't be blank",
            status=422,
            body={"error": {"price": ["can't be blank"]}},
            method="POST",
            path="/123/sales_invoices.json",
            ids={"contact_id": "496081523137578258"},
        )
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is MoneybirdValidationError
        assert (copy.status, copy.body, copy.ids, copy.message) == (
            error.status,
            error.body,
            error.ids,
            error.message,
        )
        assert str(copy) == "Moneybird refused (422): price: can't be blank [POST /123/sales_invoices.json]"

    def test_rate_limited_carries_its_reset(self) -> None:
        error = MoneybirdRateLimited("slow down", reset_at=NOW + 90)
        assert error.retry_at == NOW + 90
        assert error.retry_after_seconds(NOW) == 90
        assert error.retry_after_seconds(NOW + 200) == 0
        assert pickle.loads(pickle.dumps(error)).reset_at == NOW + 90


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
