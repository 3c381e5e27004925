"""Moneybird's contacts copied once, matched by e-mail locally: the booking at the call floor, and
still exactly one contact per e-mail (app.booking.contact_directory)."""

from __future__ import annotations

from collections import Counter

import pytest

from app.booking import contact_directory
from app.booking.contact_directory import ContactDirectory
from app.constants import CONTACT_DIRECTORY_KEY
from app.moneybird.errors import MoneybirdBadRequest
from app.moneybird.models import Contact
from tests.booking.test_contacts import _book, _customer
from tests.harness import Harness


def _directory(h: Harness) -> ContactDirectory:
    return ContactDirectory(h.redis, h.services.moneybird, administration_id=h.moneybird.administration_id)


def _routes(h: Harness) -> Counter[str]:
    return Counter(str(r.route) for r in h.moneybird.requests)


async def test_a_new_customer_costs_four_calls_and_a_returning_one_three(harness: Harness) -> None:
    h = harness
    await h.services.reference.get(h.services.moneybird)
    h.moneybird.seed_contact(firstname="Bestaand", send_invoices_to_email="bestaand@example.nl")
    await _book(h, 9101, _customer("eerste@example.nl"))  # loads the copy
    h.moneybird.reset_requests()
    await _book(h, 9102, _customer("nieuw@example.nl"))
    assert h.moneybird.calls() == 4, _routes(h)
    assert h.moneybird.calls("GET /contacts") == 0  # no search
    h.moneybird.reset_requests()
    await _book(h, 9103, _customer("nieuw@example.nl"))
    assert h.moneybird.calls() == 3, _routes(h)


async def test_a_contact_in_the_copy_is_adopted_without_a_call_for_it(harness: Harness) -> None:
    h = harness
    by_hand = h.moneybird.seed_contact(firstname="Noor", send_invoices_to_email="Noor@Example.nl")
    h.moneybird.seed_contact(firstname="Noor", send_invoices_to_email="noor@example.nl.au")
    await _directory(h).compare()
    h.moneybird.reset_requests()
    invoice = await _book(h, 9201, _customer("noor@example.nl"))
    assert invoice["contact_id"] == by_hand["id"]
    assert h.moneybird.calls("POST /contacts") == 0
    assert h.moneybird.calls("GET /contacts") == 0


async def test_a_contact_made_elsewhere_after_the_copy_is_adopted_once_the_copy_is_stale(
    harness: Harness,
) -> None:
    h = harness
    await _book(h, 9301, _customer("eerste@example.nl"))  # the copy, compared now
    by_hand = h.moneybird.seed_contact(firstname="Noor", send_invoices_to_email="noor@example.nl")
    # The freshness window ends (the key expires): the next miss compares with Moneybird first.
    await h.redis.delete(f"{CONTACT_DIRECTORY_KEY}:{h.moneybird.administration_id}:compared")
    invoice = await _book(h, 9302, _customer("noor@example.nl"))
    assert invoice["contact_id"] == by_hand["id"]
    emails = [c.get("send_invoices_to_email") for c in h.moneybird.contacts.values()]
    assert emails.count("noor@example.nl") == 1


async def test_a_contact_archived_in_moneybird_leaves_the_copy(harness: Harness) -> None:
    h = harness
    old = h.moneybird.seed_contact(firstname="Noor", send_invoices_to_email="noor@example.nl")
    directory = _directory(h)
    await directory.compare()
    assert [c.id for c in await directory.contacts_for("noor@example.nl") or []] == [old["id"]]
    h.moneybird.archive_contact(old["id"])
    await h.redis.delete(f"{CONTACT_DIRECTORY_KEY}:{h.moneybird.administration_id}:compared")
    assert await directory.contacts_for("noor@example.nl") == []


async def test_a_create_whose_answer_was_lost_is_found_and_not_made_twice(harness: Harness) -> None:
    h = harness
    await _book(h, 9401, _customer("eerste@example.nl"))  # the copy, compared now
    # Moneybird makes the contact, the answer never arrives; the copy cannot know the contact.
    h.moneybird.fail_next("POST /contacts", kind="lost")
    await _book(h, 9402, _customer("noor@example.nl"))
    emails = [c.get("send_invoices_to_email") for c in h.moneybird.contacts.values()]
    assert emails.count("noor@example.nl") == 1


async def test_the_fake_synchronization_answers_like_moneybird(harness: Harness) -> None:
    h = harness
    made = [h.moneybird.seed_contact(firstname=f"K{n}", email=f"k{n}@example.nl") for n in range(150)]
    h.moneybird.archive_contact(made[0]["id"])
    versions = await h.services.moneybird.contact_versions()
    assert set(versions) == {c["id"] for c in made[1:]}  # archived contacts left out
    h.moneybird.reset_requests()
    fetched = await h.services.moneybird.contacts_by_id([c["id"] for c in made])
    assert h.moneybird.calls("POST /contacts/synchronization") == 2  # at most 100 a request
    assert {c.id for c in fetched} == {c["id"] for c in made}
    # Moneybird answers at most 100 contacts a request, however many ids it is sent.
    answer = await h.services.moneybird._http.request(
        "POST", "contacts/synchronization", body={"ids": [c["id"] for c in made]}
    )
    assert len(answer.json()) == 100
    with pytest.raises(MoneybirdBadRequest, match="Ids is required"):
        await h.services.moneybird._http.request("POST", "contacts/synchronization", body={})


async def test_while_another_worker_compares_the_address_is_searched(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    monkeypatch.setattr(contact_directory, "_COMPARE_WAIT_SECONDS", 0.1)
    key = f"{CONTACT_DIRECTORY_KEY}:{h.moneybird.administration_id}"
    await h.redis.set(f"{key}:comparing", "another worker", ex=60)
    assert await _directory(h).contacts_for("noor@example.nl") is None
    by_hand = h.moneybird.seed_contact(firstname="Noor", send_invoices_to_email="noor@example.nl")
    invoice = await _book(h, 9501, _customer("noor@example.nl"))
    assert invoice["contact_id"] == by_hand["id"]
    assert h.moneybird.calls("GET /contacts") == 1  # the search
    assert h.moneybird.calls("GET /contacts/synchronization") == 0


async def test_each_contact_book_has_its_own_copy_and_connection_1_keeps_its_keys(harness: Harness) -> None:
    h = harness
    administration = h.moneybird.administration_id
    first = ContactDirectory(
        h.redis, h.services.moneybird, administration_id=administration, contact_book_id=1
    )
    second = ContactDirectory(h.redis, h.services.moneybird, administration_id="999", contact_book_id=2)
    assert first.key == f"{CONTACT_DIRECTORY_KEY}:{administration}"  # as before connections existed
    for directory in (first, second):
        await h.redis.set(f"{directory.key}:compared", "now", ex=60)
    noor = Contact.model_validate(
        h.moneybird.seed_contact(firstname="Noor", send_invoices_to_email="noor@example.nl")
    )

    await second.add(noor)

    assert [c.id for c in await second.contacts_for("noor@example.nl") or []] == [noor.id]
    assert await first.contacts_for("noor@example.nl") == []
