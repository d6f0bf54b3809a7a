"""How a `payment` row follows its PaymentIntent, whatever order Stripe's news arrives in.

Stripe does not promise to deliver events in order, and ChargeNet also learns a state from
its own calls' responses. The rules, applied to every update:
- `succeeded` and `canceled` are final: nothing moves a payment out of them;
- otherwise the newer fact wins (Stripe's event `created`); for facts of the same second,
  the status further along the way wins (created < requires_capture < succeeded);
- amounts only grow: captured and refunded amounts are the largest ever reported.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from api.billing.payment_types import IntentInfo, IntentStatus
from schema.payment_models import Payment
from schema.timeutil import utcnow

FINAL = frozenset({IntentStatus.SUCCEEDED.value, IntentStatus.CANCELED.value})
_RANK = {
    IntentStatus.REQUIRES_PAYMENT_METHOD.value: 0,
    IntentStatus.REQUIRES_CONFIRMATION.value: 1,
    IntentStatus.REQUIRES_ACTION.value: 2,
    IntentStatus.PROCESSING.value: 3,
    IntentStatus.REQUIRES_CAPTURE.value: 4,
    IntentStatus.SUCCEEDED.value: 5,
    IntentStatus.CANCELED.value: 5,
}
MAX_FAILURE_MESSAGE = 300


def moves_forward(current: str, current_at: datetime | None, new: str, new_at: datetime | None) -> bool:
    """Whether a status reported at `new_at` may replace `current` (known since `current_at`)."""
    if current in FINAL:
        return False
    if new_at is None or current_at is None or new_at == current_at:
        return _RANK.get(new, 0) >= _RANK.get(current, 0)
    return new_at > current_at


def apply_intent(payment: Payment, intent: dict[str, Any], *, at: datetime | None) -> bool:
    """Bring `payment` up to a PaymentIntent as Stripe serialised it (an event's object or an
    API response); `at` is when Stripe reported it (None: just now, from our own call).
    Returns whether anything changed."""
    status = str(intent["status"])
    changed = False
    if moves_forward(payment.status, payment.last_event_at, status, at):
        if payment.status != status:
            payment.status = status
            changed = True
        if status not in FINAL and int(intent.get("amount") or 0) != payment.amount_held:
            # The authorised amount (incremented holds included) while the hold stands.
            payment.amount_held = int(intent.get("amount") or 0)
            changed = True
        error = intent.get("last_payment_error") or {}
        if status == IntentStatus.REQUIRES_PAYMENT_METHOD.value and error:
            payment.failure_code = error.get("decline_code") or error.get("code")
            payment.failure_message = (error.get("message") or "")[:MAX_FAILURE_MESSAGE] or None
            changed = True
        if at is not None and (payment.last_event_at is None or at > payment.last_event_at):
            payment.last_event_at = at
    received = int(intent.get("amount_received") or 0)
    if received > payment.amount_captured:
        payment.amount_captured = received
        changed = True
    pm = intent.get("payment_method")
    if isinstance(pm, str) and payment.payment_method_id is None:
        payment.payment_method_id = pm
        changed = True
    if changed:
        payment.updated_at = utcnow()
    return changed


def intent_dict(info: IntentInfo) -> dict[str, Any]:
    """An IntentInfo (our own call's answer) in the shape `apply_intent` reads."""
    error = (
        {"code": info.failure_code, "decline_code": info.decline_code, "message": info.failure_message}
        if info.failure_code or info.decline_code
        else None
    )
    return {
        "id": info.payment_intent_id,
        "status": info.status.value,
        "amount": info.amount,
        "amount_received": info.amount_received,
        "payment_method": info.payment_method_id,
        "last_payment_error": error,
    }
