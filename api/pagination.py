"""Relay-style connections with opaque cursors and capped page sizes."""

from __future__ import annotations

import base64
import binascii
from typing import Any, Generic, TypeVar

import strawberry
from strawberry import relay
from strawberry.types import Info

from schema.errors import InvalidInput

# One page never returns more than this; asking for more is an error (not a silent cut), so a
# client never mistakes a capped page for the whole list. The query cost limit relies on it.
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 50

T = TypeVar("T")


def clamp_first(first: int | None) -> int:
    if first is None:
        return DEFAULT_PAGE_SIZE
    if first < 0 or first > MAX_PAGE_SIZE:
        raise InvalidInput(f"first must be between 0 and {MAX_PAGE_SIZE}")
    return first


def encode_cursor(kind: str, value: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{value}".encode()).decode()


def decode_cursor(kind: str, cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        prefix, _, value = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        if prefix != kind:
            raise ValueError(prefix)
        return int(value)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("invalid cursor") from None


@strawberry.type
class Connection(relay.Connection[relay.NodeType], Generic[relay.NodeType]):
    total_count: int | None = strawberry.field(
        default=None, description="Items matching the filters, across all pages."
    )


def build_connection(
    nodes: list[Any], *, kind: str, keys: list[int], has_next: bool, total: int | None
) -> Connection[Any]:
    edges = [relay.Edge(node=n, cursor=encode_cursor(kind, k)) for n, k in zip(nodes, keys, strict=True)]
    return Connection(
        edges=edges,  # type: ignore[arg-type]
        page_info=relay.PageInfo(
            has_next_page=has_next,
            has_previous_page=False,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        total_count=total,
    )


def selects(info: Info, name: str) -> bool:
    """Whether the client selected field `name` anywhere under this field (edges, node, ...)."""

    def found(selections: list[Any]) -> bool:
        return any(
            getattr(sel, "name", None) == name or found(getattr(sel, "selections", [])) for sel in selections
        )

    return any(found(field.selections) for field in info.selected_fields)


def wants_total(info: Info) -> bool:
    """Whether the client selected `totalCount`: counting costs a second query, often the
    larger one, so it runs only when asked for."""

    def found(selections: list[Any]) -> bool:
        for sel in selections:
            if getattr(sel, "name", None) == "totalCount":
                return True
            if not hasattr(sel, "alias") and found(getattr(sel, "selections", [])):
                return True  # fragments
        return False

    return any(found(field.selections) for field in info.selected_fields)
