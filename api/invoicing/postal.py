"""Postal addresses as receipts and invoices print them: the seller's, a sponsor's, a driver's."""

from __future__ import annotations

from schema.errors import InvalidInput

MAX_ADDRESS = 500
MAX_ADDRESS_LINES = 6  # what fits the address block of a document


def clean_address(raw: str, field: str = "address") -> str | None:
    """Lines trimmed, inner whitespace collapsed, empty lines dropped; "" (or only blanks): None."""
    lines = [" ".join(line.split()) for line in raw.splitlines()]
    address = "\n".join(line for line in lines if line)
    if len(address) > MAX_ADDRESS or address.count("\n") >= MAX_ADDRESS_LINES:
        raise InvalidInput(f"{field} is longer than {MAX_ADDRESS_LINES} lines or {MAX_ADDRESS} characters")
    return address or None
