"""The fake's webhooks: `/webhooks` (the `settings` scope) and the pushes Moneybird makes to them.

As Moneybird documents them: a webhook is registered with a `url` and `enabled_events` (an event
name, or a group such as `sales_invoice_state_changed` matching every event that starts with it;
none at all means the sales invoices' state changes); the create answers the webhook with its
`secret`, which no later answer shows. Moneybird checks the url when the webhook is registered: the
fake pushes a check to it and refuses the url unless it answers 200 (what Moneybird then answers is
not documented: the fake says 422 naming the url). Every change the fake makes to a record (the
events `MoneybirdSandbox.touch` writes) is pushed to each webhook that wants it: JSON of
`{administration_id, webhook_id, webhook_token, entity_type, entity_id, state, action, entity}`,
signed `Moneybird-Signature: t=…,v1=…` with the webhook's secret, with an `Idempotency-Key` that stays
the same across the retries of one push. A push not answered 200 is tried again, 10 more times, the
wait growing each time. Pushes wait in `sandbox.pushes` until `deliver_pushes` sends what is due:
tests call it, a served fake runs it in the background (`push_loop`).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, Final

import httpx

from app.moneybird.push_signature import sign_push
from app.sandbox.moneybird.records import Call, Reply, SandboxBooks
from app.sandbox.moneybird.wire import Record, symbolic_error

# One push and its retries: Moneybird tries 10 more times, "with growing intervals".
PUSH_RETRIES: Final = 10
PUSH_TIMEOUT_SECONDS: Final = 10.0
CHECK_ACTION: Final = "test_webhook"
_ALLOWED_KEYS = frozenset({"url", "enabled_events"})


@dataclass
class Push:
    webhook_id: str
    url: str
    secret: str
    body: bytes
    idempotency_key: str
    action: str
    attempts: int = 0
    due: float = 0.0
    statuses: list[int | None] = field(default_factory=list)  # None: no answer at all

    @property
    def delivered(self) -> bool:
        return bool(self.statuses) and self.statuses[-1] == 200

    @property
    def given_up(self) -> bool:
        return not self.delivered and self.attempts > PUSH_RETRIES


# -- the API ------------------------------------------------------------------------------------


def list_webhooks(call: Call) -> Reply:
    return Reply(200, [_view(hook) for hook in _of_administration(call)])


def create_webhook(call: Call) -> Reply | Awaitable[Reply]:
    body = call.body
    if "events" in body:
        raise symbolic_error(
            400, "'events' has been removed from webhooks, use 'enabled_events'", events="removed"
        )
    unknown = sorted(set(body) - _ALLOWED_KEYS)
    if unknown:
        raise symbolic_error(
            422, f"Unknown attribute(s): {', '.join(unknown)}", **dict.fromkeys(unknown, "unknown")
        )
    url = body.get("url")
    if not isinstance(url, str) or not url:
        raise symbolic_error(400, "Url is required", url="required")
    events = body.get("enabled_events", [])
    if not isinstance(events, list) or not all(isinstance(event, str) for event in events):
        raise symbolic_error(422, "Enabled events must be a list of event names", enabled_events="invalid")
    sandbox = call.sandbox
    hook: Record = {
        "id": sandbox.ids.next(),
        "administration_id": call.adm.id,
        "url": url,
        "enabled_events": list(events),
        "last_http_status": None,
        "last_http_body": None,
        "token": secrets.token_hex(16),
        "secret": sandbox.next_webhook_secret or secrets.token_hex(32),
        "deactivated_at": None,
    }
    return _register_after_check(sandbox, hook)


async def _register_after_check(sandbox: SandboxBooks, hook: Record) -> Reply:
    """Moneybird checks the url answers 200 before the webhook exists."""
    check = _push_for(sandbox, hook, action=CHECK_ACTION, record=None)
    status = await _send(sandbox, check)
    if status != 200:
        raise symbolic_error(
            422, f"Url did not respond with 200 (got {status or 'no answer'})", url="invalid"
        )
    with sandbox.lock:
        sandbox.webhooks[hook["id"]] = hook
    return Reply(201, _view(hook) | {"secret": hook["secret"]})


def delete_webhook(call: Call) -> Reply:
    hook = call.sandbox.webhooks.get(call.params["id"])
    if hook is None or hook["administration_id"] != call.adm.id:
        raise symbolic_error(404, "Record not found for model name: Webhook", id="not_found")
    del call.sandbox.webhooks[hook["id"]]
    return Reply(204)


def _of_administration(call: Call) -> list[Record]:
    return [hook for hook in call.sandbox.webhooks.values() if hook["administration_id"] == call.adm.id]


def _view(hook: Record) -> Record:
    """What every answer but the create shows: never the secret."""
    return {key: value for key, value in hook.items() if key != "secret"}


# -- the pushes ---------------------------------------------------------------------------------


def wants(hook: Record, action: str) -> bool:
    events: list[str] = hook["enabled_events"] or ["sales_invoice_state_changed"]
    return hook["deactivated_at"] is None and any(action.startswith(event) for event in events)


def entity_type(record: Record) -> str | None:
    if "entry_number" in record:
        return "ExternalSalesInvoice"
    if "invoice_id" in record and "details" in record:
        return "SalesInvoice"
    if "customer_id" in record and "firstname" in record:
        return "Contact"
    return None


def queue_pushes(sandbox: SandboxBooks, record: Record, action: str) -> None:
    """Called under the sandbox's lock for every event a record gets."""
    for hook in list(sandbox.webhooks.values()):
        if hook["administration_id"] == record.get("administration_id") and wants(hook, action):
            sandbox.pushes.append(_push_for(sandbox, hook, action=action, record=record))


def _push_for(sandbox: SandboxBooks, hook: Record, *, action: str, record: Record | None) -> Push:
    entity = {key: value for key, value in record.items() if key != "events"} if record else None
    payload: dict[str, Any] = {
        "administration_id": hook["administration_id"],
        "webhook_id": hook["id"],
        "webhook_token": hook["token"],
        "entity_type": entity_type(record) if record else None,
        "entity_id": record["id"] if record else None,
        "state": record.get("state") if record else None,
        "action": action,
        "entity": entity,
    }
    return Push(
        webhook_id=hook["id"],
        url=hook["url"],
        secret=hook["secret"],
        body=json.dumps(payload, default=str).encode(),
        idempotency_key=uuid.uuid4().hex,
        action=action,
        due=sandbox.clock.now(),
    )


async def deliver_pushes(sandbox: SandboxBooks) -> int:
    """Send every push that is due (a retry once its wait is over); returns how many got their 200."""
    with sandbox.lock:
        now = sandbox.clock.now()
        due = [
            push for push in sandbox.pushes if push.due <= now and not push.delivered and not push.given_up
        ]
    delivered = 0
    for push in due:
        status = await _send(sandbox, push)
        with sandbox.lock:
            push.attempts += 1
            push.statuses.append(status)
            hook = sandbox.webhooks.get(push.webhook_id)
            if hook is not None:
                hook["last_http_status"] = status
            if status == 200:
                delivered += 1
            else:
                push.due = sandbox.clock.now() + sandbox.push_retry_seconds * 2 ** (push.attempts - 1)
    return delivered


async def _send(sandbox: SandboxBooks, push: Push) -> int | None:
    headers = {
        "content-type": "application/json",
        "user-agent": "MoneyBird Webhook",
        "idempotency-key": push.idempotency_key,
        "moneybird-signature": sign_push(push.secret, push.body, timestamp=int(sandbox.clock.now())),
    }
    client = sandbox.push_client
    try:
        if client is not None:
            response = await client.post(push.url, content=push.body, headers=headers)
        else:
            async with httpx.AsyncClient(timeout=PUSH_TIMEOUT_SECONDS) as own:
                response = await own.post(push.url, content=push.body, headers=headers)
    except httpx.HTTPError:
        return None
    return response.status_code


async def push_loop(sandbox: SandboxBooks, *, every_seconds: float = 0.2) -> None:
    """A served fake's pusher: what a test process does not have to drive by hand."""
    while True:
        await deliver_pushes(sandbox)
        await asyncio.sleep(every_seconds)
