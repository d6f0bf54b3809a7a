"""The GraphQL schema: queries, mutations and subscriptions of every context, plus limits."""

from __future__ import annotations

from pathlib import Path

import strawberry
from graphql import GraphQLError
from strawberry import relay
from strawberry.extensions import (
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)

from api.control.mutations import ControlMutation
from api.network.queries import NetworkQuery
from api.network.subscriptions import NetworkSubscription
from api.sessions.queries import SessionsQuery
from api.sessions.subscriptions import SessionsSubscription
from schema.errors import ChargeNetError

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schema" / "schema.graphql"

# Deep enough for station → connectors / transaction → station → location; deeper is abuse.
MAX_QUERY_DEPTH = 10
MAX_QUERY_TOKENS = 2_000
MAX_ALIASES = 30
PARSER_CACHE_SIZE = 512


@strawberry.type
class Query(NetworkQuery, SessionsQuery):
    node: relay.Node | None = relay.node(description="Any object by its global id.")


@strawberry.type
class Mutation(ControlMutation):
    pass


@strawberry.type
class Subscription(NetworkSubscription, SessionsSubscription):
    pass


def _should_mask(error: GraphQLError) -> bool:
    """Expected failures keep their message and code; anything else is masked for clients."""
    original = error.original_error
    if original is None:
        return False  # validation and syntax errors are the client's own
    return not isinstance(original, ChargeNetError | PermissionError) and not _is_permission(error)


def _is_permission(error: GraphQLError) -> bool:
    return error.original_error.__class__.__name__ == "PermissionError" or (
        error.message in ("operator access required", "not allowed")
    )


def build_schema() -> strawberry.Schema:
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=[
            QueryDepthLimiter(max_depth=MAX_QUERY_DEPTH),
            MaxTokensLimiter(max_token_count=MAX_QUERY_TOKENS),
            MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
            ParserCache(maxsize=PARSER_CACHE_SIZE),
            ValidationCache(maxsize=PARSER_CACHE_SIZE),
            MaskErrors(should_mask_error=_should_mask),
        ],
    )


def export_sdl(schema: strawberry.Schema | None = None) -> str:
    return (schema or build_schema()).as_str() + "\n"
