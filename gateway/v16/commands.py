"""Version-neutral commands as OCPP 1.6 CALLs, and their answers as CommandReplies."""

from __future__ import annotations

from typing import Any

from gateway.ocppj import OcppJSession
from schema.commands import Command, CommandReply, RemoteStart, RemoteStop, Reset, TriggerMessage
from schema.errors import InvalidInput


def to_call(command: Command) -> tuple[str, dict[str, Any]]:
    if isinstance(command, RemoteStart):
        payload: dict[str, Any] = {"idTag": command.id_tag}
        if command.connector_id is not None:
            payload["connectorId"] = command.connector_id
        return "RemoteStartTransaction", payload
    if isinstance(command, RemoteStop):
        return "RemoteStopTransaction", {"transactionId": command.transaction_id}
    if isinstance(command, Reset):
        return "Reset", {"type": command.kind.value}
    if isinstance(command, TriggerMessage):
        payload = {"requestedMessage": command.message}
        if command.connector_id is not None:
            payload["connectorId"] = command.connector_id
        return "TriggerMessage", payload
    raise InvalidInput(f"{command.name} is not available for OCPP 1.6 stations")


async def execute(session: OcppJSession, command: Command, timeout: float) -> CommandReply:
    action, payload = to_call(command)
    result = await session.call(action, payload, timeout=timeout)
    return CommandReply(status=str(result.get("status", "Accepted")), detail=result)
