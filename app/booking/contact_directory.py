"""The administration's contacts by e-mail, copied through Moneybird's synchronization endpoints.

A new customer's e-mail used to cost a search request before the contact was created. The copy
answers that question locally: it is loaded once (GET /contacts/synchronization gives every active
contact's id and version in one request; POST …/synchronization returns up to 100 contacts per
request), and brought up to date by comparing versions — one request, plus one per 100 contacts
that are new or changed since. A backfill of a thousand orders then costs the floor: create
contact, create, send, pay for a new customer.

    Redis (shared by every worker)
      <key>:ids            hash: contact id → the contact as Moneybird answered it (JSON)
      <key>:email:<e-mail> set of the active contacts' ids that invoice to that address
      <key>:compared       when the copy was last compared with Moneybird (expires: stale)

Staying exactly one contact per e-mail:
- A miss is only trusted while the copy is fresh (compared within CONTACT_DIRECTORY_FRESH_SECONDS);
  otherwise it is compared first. A contact made elsewhere in Moneybird is thus seen within that
  time, as the search saw it at once; one made for the same address inside that window by someone
  else than woobird can still get a twin — the window the search had between its answer and the
  create was a tenth of a second.
- Contacts woobird creates go into the copy at once (`add`), under the customer's contact lock.
- One worker compares at a time; one that finds another comparing for long (a first load of many
  contacts takes minutes at the rate limit) looks the address up by Moneybird's search meanwhile.
- A create whose answer was lost (a timeout: Moneybird may have made it) leaves a mark on the
  e-mail (`creating`); until a later create for that address succeeds, the address is looked up
  by Moneybird's search instead, which finds the contact if it was made.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import structlog
from arq.connections import ArqRedis

from app.constants import CONTACT_DIRECTORY_KEY, ENVIRONMENT_CONNECTION_ID
from app.moneybird.client import MoneybirdClient
from app.moneybird.models import Contact
from app.queue import connection_key

log = structlog.get_logger("woobird.contacts")

# How long a comparison with Moneybird's versions is trusted for a miss (see the module docstring).
CONTACT_DIRECTORY_FRESH_SECONDS = 60
# One worker compares at a time; the others wait for its result this long, then use the search for
# the address at hand. A first load of 10 000 contacts takes ~100 requests, minutes at the limit.
_COMPARE_LOCK_SECONDS = 600
_COMPARE_WAIT_SECONDS = 10
# A lost create's mark outlives any retry of its job.
_CREATING_SECONDS = 24 * 3600


class ContactDirectory:
    def __init__(
        self,
        redis: ArqRedis,
        moneybird: MoneybirdClient,
        *,
        administration_id: str,
        contact_book_id: int = ENVIRONMENT_CONNECTION_ID,
    ) -> None:
        self.redis = redis
        self.moneybird = moneybird
        # One copy per contact book (app.connection_scope), like the contacts in the ledger: the shops
        # booking into one administration share it, and no two administrations ever do.
        self.key = connection_key(f"{CONTACT_DIRECTORY_KEY}:{administration_id}", contact_book_id)

    async def contacts_for(self, email: str) -> list[Contact] | None:
        """The active contacts invoicing to `email`, lowest id first; None: ask Moneybird's search."""
        if await self.redis.exists(self._creating(email)):
            return None
        if not await self.redis.exists(f"{self.key}:compared") and await self.compare() is None:
            return None  # another worker is still comparing
        raw_members: set[bytes] = await self.redis.smembers(f"{self.key}:email:{email}")  # type: ignore[misc]
        members = sorted(_text(m) for m in raw_members)
        if not members:
            return []
        found: list[bytes | None] = await self.redis.hmget(f"{self.key}:ids", members)  # type: ignore[misc]
        contacts = [Contact.model_validate_json(raw) for raw in found if raw is not None]
        return sorted((c for c in contacts if email in c.invoice_emails), key=lambda c: int(c.id))

    async def compare(self) -> int | None:
        """Bring the copy up to Moneybird's versions; returns how many contacts were fetched, or None
        when another worker is comparing and did not finish within _COMPARE_WAIT_SECONDS."""
        lock = self.redis.lock(f"{self.key}:comparing", timeout=_COMPARE_LOCK_SECONDS)
        if not await lock.acquire(blocking=True, blocking_timeout=_COMPARE_WAIT_SECONDS):
            return None
        try:
            if await self.redis.exists(f"{self.key}:compared"):
                return 0  # another worker just did
            started = time.time()
            versions = await self.moneybird.contact_versions()
            known = await self._known()
            changed = [i for i, version in versions.items() if i not in known or known[i][0] != version]
            gone = [i for i in known if i not in versions]
            fetched = await self.moneybird.contacts_by_id(changed) if changed else []
            for contact_id in gone:
                await self._drop(contact_id, known[contact_id][1])
            for contact in fetched:
                await self._drop(contact.id, known[contact.id][1] if contact.id in known else ())
                await self.add(contact)
            # Trusted from the moment the versions were read, not from when the fetch ended.
            fresh_for = max(1, int(CONTACT_DIRECTORY_FRESH_SECONDS - (time.time() - started)))
            await self.redis.set(f"{self.key}:compared", str(started), ex=fresh_for)
        finally:
            if await lock.owned():
                await lock.release()
        if fetched or gone:
            log.info("contact copy compared", fetched=len(fetched), gone=len(gone), active=len(versions))
        return len(fetched)

    async def add(self, contact: Contact) -> None:
        """Put a contact into the copy (an archived one only leaves it)."""
        if contact.archived:
            await self._drop(contact.id, contact.invoice_emails)
            return
        emails = contact.invoice_emails
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(f"{self.key}:ids", contact.id, contact.model_dump_json())
            for email in emails:
                pipe.sadd(f"{self.key}:email:{email}", contact.id)
            await pipe.execute()

    async def creating(self, email: str) -> None:
        """Mark a create under way: should its answer be lost, the address is searched, not copied."""
        await self.redis.set(self._creating(email), "1", ex=_CREATING_SECONDS)

    async def created(self, email: str, contact: Contact) -> None:
        await self.add(contact)
        await self.redis.delete(self._creating(email))

    async def created_nothing(self, email: str) -> None:
        await self.redis.delete(self._creating(email))

    async def _known(self) -> dict[str, tuple[int | None, tuple[str, ...]]]:
        known = {}
        stored: dict[bytes, bytes] = await self.redis.hgetall(f"{self.key}:ids")  # type: ignore[misc]
        for raw in stored.values():
            contact = Contact.model_validate_json(raw)
            known[contact.id] = (contact.version, contact.invoice_emails)
        return known

    async def _drop(self, contact_id: str, emails: Iterable[str]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hdel(f"{self.key}:ids", contact_id)
            for email in emails:
                pipe.srem(f"{self.key}:email:{email}", contact_id)
            await pipe.execute()

    def _creating(self, email: str) -> str:
        return f"{self.key}:creating:{email}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
