"""Real GraphQL clients: HTTP via httpx and subscriptions over graphql-transport-ws."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect


async def gql(
    http: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    token: str | None = None,
    status: int = 200,
) -> dict[str, Any]:
    """POST a document; `status` is the HTTP status expected (401 for a rejected token)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await http.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )
    assert response.status_code == status, response.text
    return response.json()  # type: ignore[no-any-return]


def data(result: dict[str, Any]) -> dict[str, Any]:
    assert "errors" not in result, result["errors"]
    return result["data"]  # type: ignore[no-any-return]


class GraphQLWS:
    """A graphql-transport-ws client: connection_init, subscribe, next, complete."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._next_id = 0

    @classmethod
    async def open(cls, url: str, *, payload: dict[str, Any] | None = None) -> GraphQLWS:
        ws = await connect(url, subprotocols=["graphql-transport-ws"])  # type: ignore[list-item]
        client = cls(ws)
        await ws.send(json.dumps({"type": "connection_init", "payload": payload or {}}))
        ack = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert ack["type"] == "connection_ack", ack
        return client

    async def subscribe(self, query: str, variables: dict[str, Any] | None = None) -> str:
        self._next_id += 1
        sid = str(self._next_id)
        await self.ws.send(
            json.dumps(
                {"id": sid, "type": "subscribe", "payload": {"query": query, "variables": variables or {}}}
            )
        )
        return sid

    async def receive(self, timeout: float = 5.0) -> dict[str, Any]:
        while True:
            message = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
            if message["type"] == "ping":
                await self.ws.send(json.dumps({"type": "pong"}))
                continue
            return message  # type: ignore[no-any-return]

    async def next_payload(self, timeout: float = 5.0) -> dict[str, Any]:
        message = await self.receive(timeout)
        assert message["type"] == "next", message
        assert "errors" not in message["payload"], message["payload"]
        return message["payload"]["data"]  # type: ignore[no-any-return]

    async def close(self) -> None:
        await self.ws.close()
