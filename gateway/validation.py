"""Compiled JSON-schema validation of OCPP payloads, from the schemas the `ocpp` package ships.

`jsonschema` costs 0.1–1.9 ms per message; fastjsonschema compiles each schema to Python once,
about 25× faster, which keeps validation on for every inbound message. Timestamps get a real
`date-time` check (plain schema validation would let "yesterday" through).

Callers name a schema the 1.6 way whatever the version: the action for a request
("BootNotification"), the action + "Response" for its answer. The 2.0.1 package files requests
as "BootNotificationRequest.json"; `_file_name` bridges the two.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from importlib import resources
from typing import Any

import fastjsonschema

from schema.timeutil import parse_ocpp_datetime


def _is_datetime(value: str) -> bool:
    try:
        parse_ocpp_datetime(value)
    except ValueError:
        return False
    return True


FORMATS: dict[str, Callable[[str], bool]] = {"date-time": _is_datetime}


class PayloadInvalid(Exception):
    """A payload broke its schema; `ocpp_code` is the OCPP-J error code to answer with."""

    def __init__(self, ocpp_code: str, description: str) -> None:
        super().__init__(description)
        self.ocpp_code = ocpp_code
        self.description = description


# OCPP 1.6-J §4.2.3 error codes by the schema rule that failed. (1.6 spells FormationViolation.)
_RULE_TO_CODE_16 = {
    "type": "TypeConstraintViolation",
    "required": "ProtocolError",
    "additionalProperties": "FormationViolation",
    "maxLength": "PropertyConstraintViolation",
    "minLength": "PropertyConstraintViolation",
    "enum": "PropertyConstraintViolation",
    "format": "PropertyConstraintViolation",
    "minimum": "PropertyConstraintViolation",
    "maximum": "PropertyConstraintViolation",
    "minItems": "OccurenceConstraintViolation",
    "maxItems": "OccurenceConstraintViolation",
}
# OCPP-J 2.0.1 §4.3 renamed two codes: FormatViolation, and OccurrenceConstraintViolation spelt right.
_RULE_TO_CODE_201 = {
    **_RULE_TO_CODE_16,
    "additionalProperties": "FormatViolation",
    "minItems": "OccurrenceConstraintViolation",
    "maxItems": "OccurrenceConstraintViolation",
}
# package → (error code by schema rule, the code for anything else)
_CODES = {
    "v16": (_RULE_TO_CODE_16, "FormationViolation"),
    "v201": (_RULE_TO_CODE_201, "FormatViolation"),
}
RESPONSE_SUFFIX = "Response"


def format_violation(package: str) -> str:
    """The code for a malformed frame in `package`'s OCPP version (spelt differently in each)."""
    return _CODES.get(package, _CODES["v16"])[1]


def _file_name(package: str, name: str) -> str:
    """The schema file of `name` in `package`: 1.6 files a request under its action alone."""
    if package == "v16" or name.endswith(RESPONSE_SUFFIX):
        return name
    return f"{name}Request"


@cache
def _validator(package: str, name: str) -> Callable[[Any], Any] | None:
    try:
        schemas = resources.files(f"ocpp.{package}.schemas")
        text = schemas.joinpath(f"{_file_name(package, name)}.json").read_text()
    except FileNotFoundError:
        return None
    schema = json.loads(text)
    # draft-04 (1.6) or draft-06 (2.0.1) "$schema" plus our formats; compiled once per process.
    return fastjsonschema.compile(schema, formats=FORMATS)  # type: ignore[no-any-return]


def has_schema(package: str, action: str) -> bool:
    return _validator(package, action) is not None


def validate(package: str, name: str, payload: Any) -> None:
    """Raise PayloadInvalid if `payload` breaks schema `name` (e.g. "MeterValues")."""
    validator = _validator(package, name)
    if validator is None:
        raise PayloadInvalid("NotImplemented", f"no schema for {name}")
    try:
        validator(payload)
    except fastjsonschema.JsonSchemaValueException as exc:
        by_rule, fallback = _CODES.get(package, _CODES["v16"])
        code = by_rule.get(exc.rule or "", fallback)
        raise PayloadInvalid(code, exc.message) from None


def warm(package: str, names: list[str]) -> None:
    """Compile validators up front so the first charger after start is not slowed down."""
    for name in names:
        _validator(package, name)
