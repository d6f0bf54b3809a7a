"""Default deny, enforced when the schema is built.

Every field of Query, Mutation and Subscription must name a permission class; a schema with a
root field that does not is refused at startup (and by the contract tests), so forgetting a
rule can never publish an open field. Fields of object types inherit the reach of the root
field that returned the object (repositories scope the rows); fields that need more than
that name their own permission class.
"""

from __future__ import annotations

from collections.abc import Iterator

import strawberry
from strawberry.permission import BasePermission
from strawberry.types.base import StrawberryObjectDefinition

ROOTS = ("Query", "Mutation", "Subscription")


class MissingAccessRule(RuntimeError):
    pass


def root_fields(schema: strawberry.Schema) -> Iterator[tuple[str, str, list[type[BasePermission]]]]:
    for root in ROOTS:
        definition = schema.get_type_by_name(root)
        if not isinstance(definition, StrawberryObjectDefinition):
            continue
        for f in definition.fields:
            yield root, f.graphql_name or f.python_name, list(f.permission_classes)


def assert_every_root_field_has_a_rule(schema: strawberry.Schema) -> None:
    missing = [f"{root}.{name}" for root, name, perms in root_fields(schema) if not perms]
    if missing:
        raise MissingAccessRule(f"fields without an access rule (default is deny): {', '.join(missing)}")
