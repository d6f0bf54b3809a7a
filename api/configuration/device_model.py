"""A 2.0.1 station's stored device model, grouped as the station describes itself: components
(with their instance and EVSE/connector) > variables (with their instance) > attributes.
Pure functions over the stored rows (schema/device_models.py)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

ACTUAL = "Actual"
# Attributes one deviceModel answer holds: a full inventory of a large DC charger is a few
# thousand attributes; beyond this the caller narrows by component or variable.
MAX_ATTRIBUTES = 5_000


@dataclass(frozen=True, slots=True)
class Attribute:
    type: str
    value: str | None
    mutability: str | None
    reported_at: datetime
    key: str


@dataclass(slots=True)
class Variable:
    name: str
    instance: str | None
    data_type: str | None
    unit: str | None
    attributes: list[Attribute] = field(default_factory=list)


@dataclass(slots=True)
class Component:
    name: str
    instance: str | None
    evse_id: int | None
    connector_id: int | None
    variables: list[Variable] = field(default_factory=list)


def configuration_key(row: Any) -> str:
    """The neutral configuration key of one attribute, spelt as the gateway mirrors it into
    station_configuration_key (gateway/v201/variables.py Address.key) — the key to use in
    templates and changeConfiguration for a 2.0.1 station:
    Component[instance]@evse:connector.Variable[instance]/AttributeType."""
    text = row.component_name
    if row.component_instance:
        text += f"[{row.component_instance}]"
    if row.evse_id:
        text += f"@{row.evse_id}"
        if row.connector_id:
            text += f":{row.connector_id}"
    text += f".{row.variable_name}"
    if row.variable_instance:
        text += f"[{row.variable_instance}]"
    if row.attribute_type != ACTUAL:
        text += f"/{row.attribute_type}"
    return str(text)


def group(rows: Iterable[Any]) -> list[Component]:
    """Rows in address order (the repository sorts them) as components > variables."""
    components: list[Component] = []
    for r in rows:
        c_id = (r.component_name, r.component_instance or None, r.evse_id or None, r.connector_id or None)
        if (
            not components
            or (
                components[-1].name,
                components[-1].instance,
                components[-1].evse_id,
                components[-1].connector_id,
            )
            != c_id
        ):
            components.append(Component(*c_id))
        component = components[-1]
        v_id = (r.variable_name, r.variable_instance or None)
        if (
            not component.variables
            or (component.variables[-1].name, component.variables[-1].instance) != v_id
        ):
            component.variables.append(Variable(*v_id, data_type=r.data_type, unit=r.unit))
        variable = component.variables[-1]
        variable.attributes.append(
            Attribute(r.attribute_type, r.value, r.mutability, r.reported_at, configuration_key(r))
        )
    return components
