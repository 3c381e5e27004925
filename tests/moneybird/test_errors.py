from __future__ import annotations

import pickle

from app.moneybird.errors import (
    MoneybirdAuthError,
    MoneybirdCall,
    MoneybirdConfigurationError,
    MoneybirdRateLimited,
    MoneybirdRejected,
    MoneybirdTransient,
    MoneybirdValidationError,
    describe_error_body,
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
            call=MoneybirdCall(
                method="POST", path="/123/sales_invoices.json", ids={"contact_id": "496081523137578258"}
            ),
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
        assert pickle.loads(pickle.dumps(error)).retry_at == NOW + 90
