"""A static cost limit for GraphQL operations, checked before anything runs.

Depth, token and alias limits stop odd-shaped documents; they do not stop a small document that
fans out (100 stations × their location × its 100 stations…). Each field costs 1, and a field
returning many objects multiplies the cost of what is selected under it by how many it may
return: `first`/`limit` when given (a variable counts as the maximum), the default page size
for connections without `first`, and LIST_FACTOR for plain lists.
"""

from __future__ import annotations

from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
    VariableNode,
)

from api.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from api.sessions.repository import MAX_SAMPLES_PER_REQUEST

# Room for the heaviest screen of the operator dashboard (100 stations with connectors and
# location ≈ 3,000) with margin; a second level of fan-out is far beyond it.
MAX_QUERY_COST = 10_000
# Plain lists (connectors of a station, members of an organisation) are short by nature.
LIST_FACTOR = 10
COUNT_ARGUMENTS = ("first", "limit", "last")
# Fields whose count argument goes beyond the page size (a session's meter samples).
FIELD_MAXIMUM = {"meterSamples": MAX_SAMPLES_PER_REQUEST}


def _unwrap(t: Any) -> tuple[Any, bool]:
    is_list = False
    while isinstance(t, GraphQLNonNull | GraphQLList):
        if isinstance(t, GraphQLList):
            is_list = True
        t = t.of_type
    return t, is_list


class QueryCostRule(ValidationRule):
    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        self._fragments = {
            f.name.value: f for f in context.document.definitions if isinstance(f, FragmentDefinitionNode)
        }

    def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
        schema = self.context.schema
        root = {
            "query": schema.query_type,
            "mutation": schema.mutation_type,
            "subscription": schema.subscription_type,
        }[node.operation.value]
        if root is None:
            return
        cost = self._cost(node.selection_set, root, set())
        if cost > MAX_QUERY_COST:
            self.report_error(
                GraphQLError(
                    f"query cost {cost} exceeds the limit of {MAX_QUERY_COST}; ask for fewer items "
                    "per page or fewer nested lists",
                    node,
                    extensions={"code": "QUERY_TOO_COSTLY", "cost": cost, "limit": MAX_QUERY_COST},
                )
            )

    def _cost(self, selection_set: SelectionSetNode | None, parent: Any, seen: set[str]) -> int:
        if selection_set is None:
            return 0
        total = 0
        for sel in selection_set.selections:
            if isinstance(sel, FieldNode):
                total += self._field_cost(sel, parent, seen)
            elif isinstance(sel, InlineFragmentNode):
                target = parent
                if sel.type_condition is not None:
                    target = self.context.schema.get_type(sel.type_condition.name.value) or parent
                total += self._cost(sel.selection_set, target, seen)
            elif isinstance(sel, FragmentSpreadNode):
                name = sel.name.value
                fragment = self._fragments.get(name)
                if fragment is None or name in seen:  # cycles are reported by graphql's own rules
                    continue
                target = self.context.schema.get_type(fragment.type_condition.name.value) or parent
                total += self._cost(fragment.selection_set, target, seen | {name})
        return total

    def _field_cost(self, node: FieldNode, parent: Any, seen: set[str]) -> int:
        if node.selection_set is None:
            return 1
        field_def = (
            parent.fields.get(node.name.value)
            if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType)
            else None
        )
        if field_def is None:
            return 1  # unknown fields are reported by validation; they cost nothing here
        named, is_list = _unwrap(field_def.type)
        multiplier = 1
        count = self._count_argument(node, field_def)
        if count is not None:
            multiplier = count
        elif getattr(named, "name", "").endswith("Connection"):
            multiplier = DEFAULT_PAGE_SIZE
        elif is_list and not parent.name.endswith("Connection"):
            # A connection's `edges` are the page its field was already multiplied by.
            multiplier = LIST_FACTOR
        return 1 + max(multiplier, 1) * self._cost(node.selection_set, named, seen)

    @staticmethod
    def _count_argument(node: FieldNode, field_def: Any) -> int | None:
        given = {arg.name.value: arg.value for arg in node.arguments or ()}
        for name in COUNT_ARGUMENTS:
            if name not in field_def.args:
                continue
            value = given.get(name)
            if isinstance(value, IntValueNode):
                return int(value.value)
            if isinstance(value, VariableNode):
                return FIELD_MAXIMUM.get(node.name.value, MAX_PAGE_SIZE)
            default = field_def.args[name].default_value
            if isinstance(default, int):
                return default
        return None
