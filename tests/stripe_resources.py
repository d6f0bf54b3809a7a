"""The resources of the local Stripe server: customers, payment methods, SetupIntents,
PaymentIntents (manual capture, increments, 3-D Secure, declines), refunds, prices and
subscriptions, each as Stripe's API v1 answers it (tests/stripe_server.py routes to them)."""

from __future__ import annotations

import copy
import secrets
import time
from typing import Any

from tests.stripe_wire import (
    CANCELABLE,
    REFUND_REASONS,
    StripeFailure,
    StripeStore,
    bool_param,
    int_param,
    invalid,
    missing,
)


class StripeResources(StripeStore):
    """One method per endpoint: `(params, key=…, id=…)` → the object Stripe returns, or a
    StripeFailure. Called with the store's lock held."""

    # --- customers and payment methods ---

    def _customer_create(self, p: dict[str, Any], **_: Any) -> dict[str, Any]:
        return self._new(
            "cus",
            "customer",
            email=p.get("email"),
            name=p.get("name"),
            description=p.get("description"),
            metadata=p.get("metadata") or {},
            balance=0,
            currency=None,
            delinquent=False,
            default_source=None,
            invoice_settings={"default_payment_method": None, "custom_fields": None, "footer": None},
        )

    def _customer_get(self, p: dict[str, Any], *, id: str, **_: Any) -> dict[str, Any]:
        return self._get(id, "customer")

    def _customer_update(self, p: dict[str, Any], *, id: str, **_: Any) -> dict[str, Any]:
        customer = self._get(id, "customer")
        default = (p.get("invoice_settings") or {}).get("default_payment_method")
        if default:
            pm = self._get(default, "payment_method", "invoice_settings[default_payment_method]")
            if pm["customer"] != id:
                raise invalid(
                    f"No such PaymentMethod: '{default}'; it is not attached to this customer.",
                    param="invoice_settings[default_payment_method]",
                    code="resource_missing",
                )
            customer["invoice_settings"]["default_payment_method"] = default
        for name in ("email", "name", "description"):
            if name in p:
                customer[name] = p[name]
        if "metadata" in p:
            customer["metadata"].update(p["metadata"])
        self._emit("customer.updated", customer)
        return customer

    def _customer_pms(self, p: dict[str, Any], *, id: str, **_: Any) -> dict[str, Any]:
        self._get(id, "customer")
        data = [
            o for o in self.objects.values() if o["object"] == "payment_method" and o.get("customer") == id
        ]
        if p.get("type"):
            data = [o for o in data if o["type"] == p["type"]]
        limit = int_param(p, "limit", required=False) or 10
        data.sort(key=lambda o: o["created"], reverse=True)
        return {
            "object": "list",
            "data": data[:limit],
            "has_more": len(data) > limit,
            "url": f"/v1/customers/{id}/payment_methods",
        }

    def _seti_create(self, p: dict[str, Any], *, key: str | None, **_: Any) -> dict[str, Any]:
        if p.get("customer"):
            self._get(p["customer"], "customer", "customer")
        seti = self._new(
            "seti",
            "setup_intent",
            customer=p.get("customer"),
            usage=p.get("usage", "off_session"),
            payment_method=None,
            payment_method_types=p.get("payment_method_types") or ["card"],
            status="requires_payment_method",
            metadata=p.get("metadata") or {},
            last_setup_error=None,
            next_action=None,
        )
        seti["client_secret"] = f"{seti['id']}_secret_{secrets.token_hex(12)}"
        self._emit("setup_intent.created", seti, key)
        if bool_param(p, "confirm") and p.get("payment_method"):
            return self._seti_confirm({"payment_method": p["payment_method"]}, id=seti["id"], key=key)
        return seti

    def _seti_get(self, p: dict[str, Any], *, id: str, **_: Any) -> dict[str, Any]:
        return self._get(id, "setup_intent")

    def _seti_confirm(
        self, p: dict[str, Any], *, id: str, key: str | None = None, **_: Any
    ) -> dict[str, Any]:
        seti = self._get(id, "setup_intent", "intent")
        if seti["status"] not in ("requires_payment_method", "requires_confirmation"):
            raise invalid(
                f"You cannot confirm this SetupIntent because it has a status of {seti['status']}.",
                code="setup_intent_unexpected_state",
            )
        pm = self._payment_method(p.get("payment_method") or "", "payment_method")
        behaviour = self._behaviour.get(pm["id"])
        if behaviour and behaviour.startswith("decline:"):
            seti["last_setup_error"] = {
                "type": "card_error",
                "code": "card_declined",
                "decline_code": behaviour[8:],
            }
            self._emit("setup_intent.setup_failed", seti, key)
            raise StripeFailure(
                402,
                "card_error",
                "Your card was declined.",
                code="card_declined",
                decline_code=behaviour[8:],
                setup_intent=copy.deepcopy(seti),
            )
        seti["payment_method"] = pm["id"]
        seti["status"] = "succeeded"
        if seti["customer"]:
            pm["customer"] = seti["customer"]
            self._emit("payment_method.attached", pm, key)
        self._emit("setup_intent.succeeded", seti, key)
        return seti

    def _pm_get(self, p: dict[str, Any], *, id: str, **_: Any) -> dict[str, Any]:
        return self._get(id, "payment_method")

    def _pm_attach(self, p: dict[str, Any], *, id: str, key: str | None, **_: Any) -> dict[str, Any]:
        pm = self._payment_method(id, "payment_method")
        self._get(p.get("customer") or "", "customer", "customer")
        pm["customer"] = p["customer"]
        self._emit("payment_method.attached", pm, key)
        return pm

    def _pm_detach(self, p: dict[str, Any], *, id: str, key: str | None, **_: Any) -> dict[str, Any]:
        pm = self._get(id, "payment_method", "payment_method")
        if pm["customer"] is None:
            raise invalid(
                "The payment method you provided is not attached to a customer so detachment is impossible.",
                code="payment_method_unexpected_state",
            )
        owner = self.objects.get(pm["customer"])
        if owner is not None and owner["invoice_settings"]["default_payment_method"] == id:
            owner["invoice_settings"]["default_payment_method"] = None
        pm["customer"] = None
        self._emit("payment_method.detached", pm, key)
        return pm

    # --- payment intents ---

    def _pi_create(self, p: dict[str, Any], *, key: str | None, **_: Any) -> dict[str, Any]:
        amount = int_param(p, "amount")
        assert amount is not None
        if amount < 1:
            raise invalid("Amount must be at least 1.", param="amount", code="amount_too_small")
        if not p.get("currency"):
            raise invalid("Missing required param: currency.", param="currency", code="parameter_missing")
        if p.get("customer"):
            self._get(p["customer"], "customer", "customer")
        if bool_param(p, "off_session") and not bool_param(p, "confirm"):
            raise invalid("off_session can only be used with confirm=true.", param="off_session")
        pm = self._payment_method(p["payment_method"]) if p.get("payment_method") else None
        pi = self._new(
            "pi",
            "payment_intent",
            amount=amount,
            amount_capturable=0,
            amount_received=0,
            currency=p["currency"].lower(),
            customer=p.get("customer"),
            payment_method=pm["id"] if pm else None,
            payment_method_types=p.get("payment_method_types") or ["card"],
            payment_method_options=p.get("payment_method_options") or {},
            capture_method=p.get("capture_method", "automatic_async"),
            confirmation_method="automatic",
            status="requires_payment_method" if pm is None else "requires_confirmation",
            description=p.get("description"),
            metadata=p.get("metadata") or {},
            last_payment_error=None,
            next_action=None,
            latest_charge=None,
            canceled_at=None,
            cancellation_reason=None,
        )
        pi["client_secret"] = f"{pi['id']}_secret_{secrets.token_hex(12)}"
        self._emit("payment_intent.created", pi, key)
        if bool_param(p, "confirm"):
            self._confirm(pi, off_session=bool_param(p, "off_session"), key=key)
        return pi

    def _pi_get(self, p: dict[str, Any], *, id: str, **_: Any) -> dict[str, Any]:
        return self._get(id, "payment_intent", "intent")

    def _pi_confirm(self, p: dict[str, Any], *, id: str, key: str | None, **_: Any) -> dict[str, Any]:
        pi = self._get(id, "payment_intent", "intent")
        if pi["status"] not in ("requires_payment_method", "requires_confirmation", "requires_action"):
            raise invalid(
                f"This PaymentIntent's status is {pi['status']}; it cannot be confirmed.",
                code="payment_intent_unexpected_state",
            )
        if p.get("payment_method"):
            pi["payment_method"] = self._payment_method(p["payment_method"])["id"]
        self._confirm(pi, off_session=bool_param(p, "off_session"), key=key)
        return pi

    def _confirm(self, pi: dict[str, Any], *, off_session: bool, key: str | None) -> None:
        if pi["payment_method"] is None:
            raise invalid(
                "You cannot confirm this PaymentIntent because it's missing a payment method.",
                code="payment_intent_unexpected_state",
            )
        behaviour = self._behaviour.get(pi["payment_method"])
        if behaviour and behaviour.startswith(("decline:", "charge_decline:")):
            decline = behaviour.split(":", 1)[1]
            self._fail(pi, "card_declined", decline, "Your card was declined.", key)
        if behaviour == "authenticate":
            if off_session:
                self._fail(
                    pi,
                    "authentication_required",
                    "authentication_required",
                    "Your card was declined. This transaction requires authentication.",
                    key,
                )
            pi["status"] = "requires_action"
            pi["next_action"] = {
                "type": "use_stripe_sdk",
                "use_stripe_sdk": {"type": "three_d_secure_redirect"},
            }
            self._emit("payment_intent.requires_action", pi, key)
            return
        self._authorize(pi, request=key)

    def _fail(self, pi: dict[str, Any], code: str, decline: str, message: str, key: str | None) -> None:
        charge = self._charge(pi, status="failed")
        self.counts["declines"] += 1
        error = {
            "type": "card_error",
            "code": code,
            "decline_code": decline,
            "message": message,
            "charge": charge["id"],
            "payment_method": copy.deepcopy(self.objects[pi["payment_method"]]),
        }
        pi["status"] = "requires_payment_method"
        pi["last_payment_error"] = error
        pi["latest_charge"] = charge["id"]
        self._emit("charge.failed", charge, key)
        self._emit("payment_intent.payment_failed", pi, key)
        raise StripeFailure(
            402,
            "card_error",
            message,
            code=code,
            decline_code=decline,
            charge=charge["id"],
            payment_intent=copy.deepcopy(pi),
            request_log_url=None,
        )

    def _charge(self, pi: dict[str, Any], *, status: str) -> dict[str, Any]:
        return self._new(
            "ch",
            "charge",
            amount=pi["amount"],
            amount_captured=0,
            amount_refunded=0,
            captured=False,
            paid=status == "succeeded",
            refunded=False,
            status=status,
            currency=pi["currency"],
            customer=pi["customer"],
            payment_intent=pi["id"],
            payment_method=pi["payment_method"],
            refunds={"object": "list", "data": [], "has_more": False},
            metadata={},
        )

    def _authorize(self, pi: dict[str, Any], *, request: str | None) -> None:
        charge = self._charge(pi, status="succeeded")
        self.counts["authorizations"] += 1
        pi["latest_charge"] = charge["id"]
        pi["last_payment_error"] = None
        pi["next_action"] = None
        if pi["capture_method"] == "manual":
            pi["status"] = "requires_capture"
            pi["amount_capturable"] = pi["amount"]
            self._emit("payment_intent.amount_capturable_updated", pi, request)
        else:
            self._capture(pi, pi["amount"], request)

    def _capture(self, pi: dict[str, Any], amount: int, key: str | None) -> None:
        charge = self.objects[pi["latest_charge"]]
        charge.update(captured=True, amount_captured=amount)
        pi.update(status="succeeded", amount_received=amount, amount_capturable=0)
        self.counts["captures"] += 1
        self.counts["captured_amount"] += amount
        self._emit("charge.captured", charge, key)
        self._emit("payment_intent.succeeded", pi, key)

    def _pi_increment(self, p: dict[str, Any], *, id: str, key: str | None, **_: Any) -> dict[str, Any]:
        pi = self._get(id, "payment_intent", "intent")
        amount = int_param(p, "amount")
        assert amount is not None
        if pi["status"] != "requires_capture":
            raise invalid(
                f"This PaymentIntent's status is {pi['status']}; only requires_capture can be incremented.",
                code="payment_intent_unexpected_state",
            )
        requested = ((pi["payment_method_options"] or {}).get("card") or {}).get(
            "request_incremental_authorization"
        )
        if requested not in ("if_available", "required"):
            raise invalid(
                "This PaymentIntent was not created with incremental authorization support.",
                code="payment_intent_incremental_authorization_unsupported",
            )
        if amount <= pi["amount"]:
            raise invalid("The new amount must be greater than the current amount.", param="amount")
        pi.update(amount=amount, amount_capturable=amount)
        self.objects[pi["latest_charge"]]["amount"] = amount
        self.counts["increments"] += 1
        self._emit("payment_intent.amount_capturable_updated", pi, key)
        return pi

    def _pi_capture(self, p: dict[str, Any], *, id: str, key: str | None, **_: Any) -> dict[str, Any]:
        pi = self._get(id, "payment_intent", "intent")
        if pi["status"] != "requires_capture":
            raise invalid(
                f"This PaymentIntent could not be captured because it has a status of {pi['status']}. Only a "
                "PaymentIntent with one of the following statuses may be captured: requires_capture.",
                code="payment_intent_unexpected_state",
            )
        amount = int_param(p, "amount_to_capture", required=False)
        amount = pi["amount_capturable"] if amount is None else amount
        if amount > pi["amount_capturable"]:
            raise invalid(
                "The amount to capture exceeds the amount capturable.",
                param="amount_to_capture",
                code="amount_too_large",
            )
        self._capture(pi, amount, key)
        return pi

    def _pi_cancel(self, p: dict[str, Any], *, id: str, key: str | None, **_: Any) -> dict[str, Any]:
        pi = self._get(id, "payment_intent", "intent")
        if pi["status"] not in CANCELABLE:
            raise invalid(
                f"You cannot cancel this PaymentIntent because it has a status of {pi['status']}.",
                code="payment_intent_unexpected_state",
            )
        pi.update(
            status="canceled",
            amount_capturable=0,
            canceled_at=int(time.time()),
            cancellation_reason=p.get("cancellation_reason"),
        )
        self.counts["cancellations"] += 1
        self._emit("payment_intent.canceled", pi, key)
        return pi

    def _refund_create(self, p: dict[str, Any], *, key: str | None, **_: Any) -> dict[str, Any]:
        if not p.get("payment_intent"):
            raise invalid(
                "Missing required param: payment_intent.", param="payment_intent", code="parameter_missing"
            )
        pi = self._get(p["payment_intent"], "payment_intent", "payment_intent")
        if pi["status"] != "succeeded":
            raise invalid(
                f"This PaymentIntent has a status of {pi['status']}; only captured payments can be refunded.",
                code="charge_not_refundable",
            )
        charge = self.objects[pi["latest_charge"]]
        left = charge["amount_captured"] - charge["amount_refunded"]
        amount = int_param(p, "amount", required=False)
        amount = left if amount is None else amount
        if amount < 1 or amount > left:
            raise invalid(
                f"Refund amount ({amount}) is greater than unrefunded amount on charge ({left})",
                param="amount",
                code="amount_too_large" if amount > left else "amount_too_small",
            )
        reason = p.get("reason")
        if reason is not None and reason not in REFUND_REASONS:
            raise invalid(f"Invalid reason: {reason}", param="reason", code="parameter_invalid_empty")
        refund = self._new(
            "re",
            "refund",
            amount=amount,
            charge=charge["id"],
            currency=pi["currency"],
            payment_intent=pi["id"],
            reason=reason,
            status="succeeded",
            metadata=p.get("metadata") or {},
        )
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount_captured"]
        charge["refunds"]["data"].insert(0, copy.deepcopy(refund))
        self.counts["refunds"] += 1
        self.counts["refunded_amount"] += amount
        self._emit("refund.created", refund, key)
        self._emit("charge.refunded", charge, key)
        if "charge" in (p.get("expand") or []):
            return {**refund, "charge": copy.deepcopy(charge)}
        return refund

    # --- prices and subscriptions ---

    def _price_list(self, p: dict[str, Any], **_: Any) -> dict[str, Any]:
        data = [o for o in self.objects.values() if o["object"] == "price"]
        if p.get("lookup_keys"):
            data = [o for o in data if o["lookup_key"] in p["lookup_keys"]]
        if "active" in p:
            data = [o for o in data if o["active"] == bool_param(p, "active")]
        limit = int_param(p, "limit", required=False) or 10
        return {"object": "list", "data": data[:limit], "has_more": len(data) > limit, "url": "/v1/prices"}

    def _price_get(self, p: dict[str, Any], *, id: str, **_: Any) -> dict[str, Any]:
        return self._get(id, "price")

    def _product_create(self, p: dict[str, Any], *, key: str | None, **_: Any) -> dict[str, Any]:
        if not p.get("name"):
            raise invalid("Missing required param: name.", param="name", code="parameter_missing")
        product = self._new("prod", "product", name=p["name"], active=True, metadata=p.get("metadata") or {})
        self._emit("product.created", product, key)
        return product

    def _price_create(self, p: dict[str, Any], *, key: str | None, **_: Any) -> dict[str, Any]:
        product = self._get(p.get("product") or "", "product", "product")
        amount = int_param(p, "unit_amount")
        if not p.get("currency"):
            raise invalid("Missing required param: currency.", param="currency", code="parameter_missing")
        lookup_key = p.get("lookup_key")
        if lookup_key and any(
            o["object"] == "price" and o.get("lookup_key") == lookup_key for o in self.objects.values()
        ):
            raise invalid(
                f"A price (lookup_key: {lookup_key}) already exists; use transfer_lookup_key.",
                param="lookup_key",
            )
        recurring = p.get("recurring") or None
        price = self._new(
            "price",
            "price",
            product=product["id"],
            lookup_key=lookup_key,
            unit_amount=amount,
            currency=p["currency"].lower(),
            active=True,
            type="recurring" if recurring else "one_time",
            recurring={"interval": recurring["interval"], "interval_count": 1} if recurring else None,
            metadata=p.get("metadata") or {},
        )
        self._emit("price.created", price, key)
        return price

    def _price_update(self, p: dict[str, Any], *, id: str, key: str | None, **_: Any) -> dict[str, Any]:
        price = self._get(id, "price")
        if "active" in p:
            price["active"] = bool_param(p, "active")
        if "metadata" in p:
            price["metadata"].update(p["metadata"])
        self._emit("price.updated", price, key)
        return price

    def _sub_item(self, price_id: str, param: str) -> dict[str, Any]:
        price = self._get(price_id, "price", param)
        if not price["active"]:
            raise invalid(
                "The price specified is inactive. This field only accepts active prices.", param=param
            )
        now = int(time.time())
        return {
            "id": f"si_{secrets.token_hex(12)}",
            "object": "subscription_item",
            "created": now,
            "price": copy.deepcopy(price),
            "quantity": 1,
            "current_period_start": now,
            "current_period_end": now + 30 * 86_400,
        }

    def _invoice(self, sub: dict[str, Any], *, reason: str) -> dict[str, Any]:
        """An invoice for the subscription's current period, not yet paid."""
        item = sub["items"]["data"][0]
        invoice = self._new(
            "in",
            "invoice",
            customer=sub["customer"],
            status="open",
            billing_reason=reason,
            amount_due=item["price"]["unit_amount"],
            amount_paid=0,
            currency=item["price"]["currency"],
            period_start=item["current_period_start"],
            period_end=item["current_period_end"],
            parent={"type": "subscription_details", "subscription_details": {"subscription": sub["id"]}},
            confirmation_secret=None,
            metadata={},
        )
        sub["latest_invoice"] = invoice["id"]
        return invoice

    def _pay_invoice(self, sub: dict[str, Any], invoice: dict[str, Any], key: str | None) -> None:
        """Charge the invoice to the subscription's card: paid, needs 3-D Secure, or declined."""
        customer = self.objects[sub["customer"]]
        pm = sub.get("default_payment_method") or customer["invoice_settings"]["default_payment_method"]
        behaviour = self._behaviour.get(pm) if pm else "decline:no_card"
        self.counts["invoices"] += 1
        if behaviour is None:
            invoice.update(status="paid", amount_paid=invoice["amount_due"])
            self.counts["invoices_paid"] += 1
            self._emit("invoice.paid", invoice, key)
        elif behaviour == "authenticate" and invoice["billing_reason"] == "subscription_create":
            invoice["confirmation_secret"] = {
                "type": "payment_intent",
                "client_secret": f"pi_{secrets.token_hex(12)}_secret_{secrets.token_hex(12)}",
            }
            self._emit("invoice.payment_action_required", invoice, key)
        else:
            self._emit("invoice.payment_failed", invoice, key)

    def _sub_create(self, p: dict[str, Any], *, key: str | None, **_: Any) -> dict[str, Any]:
        customer = self._get(p.get("customer") or "", "customer", "customer")
        items = p.get("items") or []
        if not items:
            raise invalid("Missing required param: items.", param="items", code="parameter_missing")
        pm = p.get("default_payment_method")
        if pm:
            found = self._get(pm, "payment_method", "default_payment_method")
            if found["customer"] != customer["id"]:
                raise invalid(
                    f"The customer does not have a payment method with the ID {pm}.",
                    param="default_payment_method",
                    code="resource_missing",
                )
        sub = self._new(
            "sub",
            "subscription",
            customer=customer["id"],
            status="incomplete",
            default_payment_method=pm,
            items={
                "object": "list",
                "data": [
                    self._sub_item(it.get("price", ""), f"items[{i}][price]") for i, it in enumerate(items)
                ],
                "has_more": False,
            },
            cancel_at_period_end=False,
            canceled_at=None,
            latest_invoice=None,
            metadata=p.get("metadata") or {},
        )
        # As Stripe does: the first invoice is charged while creating, so a subscription paid
        # at once is created "active"; one waiting for 3-D Secure or a card, "incomplete".
        invoice = self._invoice(sub, reason="subscription_create")
        events = len(self.events)
        self._pay_invoice(sub, invoice, key)
        if invoice["status"] == "paid":
            sub["status"] = "active"
        self.events.insert(events, self.make_event("customer.subscription.created", sub))
        self.events[events]["request"] = {"id": f"req_{secrets.token_hex(8)}", "idempotency_key": key}
        return self._expanded(sub, p)

    def _expanded(self, sub: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
        expand = p.get("expand") or []
        if any(e.startswith("latest_invoice") for e in expand) and sub.get("latest_invoice"):
            return {**sub, "latest_invoice": copy.deepcopy(self.objects[sub["latest_invoice"]])}
        return sub

    def _sub_get(self, p: dict[str, Any], *, id: str, **_: Any) -> dict[str, Any]:
        return self._expanded(self._get(id, "subscription"), p)

    def _sub_update(self, p: dict[str, Any], *, id: str, key: str | None, **_: Any) -> dict[str, Any]:
        sub = self._get(id, "subscription")
        if sub["status"] == "canceled":
            raise invalid("A canceled subscription can only update its cancellation_details and metadata.")
        for i, item in enumerate(p.get("items") or []):
            existing = next((it for it in sub["items"]["data"] if it["id"] == item.get("id")), None)
            if existing is None:
                raise missing("subscription_item", str(item.get("id")), f"items[{i}][id]")
            existing["price"] = copy.deepcopy(self._get(item["price"], "price", f"items[{i}][price]"))
        if "cancel_at_period_end" in p:
            sub["cancel_at_period_end"] = bool_param(p, "cancel_at_period_end")
        self._emit("customer.subscription.updated", sub, key)
        return self._expanded(sub, p)

    def _sub_delete(self, p: dict[str, Any], *, id: str, key: str | None, **_: Any) -> dict[str, Any]:
        sub = self._get(id, "subscription")
        sub.update(status="canceled", canceled_at=int(time.time()))
        self._emit("customer.subscription.deleted", sub, key)
        return sub
