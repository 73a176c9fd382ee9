"""The client-server API calls of an application service, over httpx.

matrix-nio's client cannot masquerade (`?user_id=`) or set the original time (`?ts=`, honoured for application
services only), so every call is built here. Answers map to the engine's error kinds: 429 and 5xx and network
trouble are transient; anything else the homeserver refuses is a MatrixError (an ItemError) with its errcode.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import quote

import httpx

from migrator.errors import ItemError, TransientError
from migrator.tls import httpx_verify, untrusted

CLIENT = "/_matrix/client/v3"
MEDIA = "/_matrix/media/v3"


class MatrixError(ItemError):
    def __init__(self, status: int, errcode: str, error: str, what: str) -> None:
        super().__init__(f"{what}: homeserver answered {status} {errcode}: {error}")
        self.status, self.errcode = status, errcode


def _path(value: str) -> str:
    return quote(value, safe="")


class AppserviceClient:
    def __init__(self, homeserver: str, as_token: str, bot: str, timeout: float = 60, ca_file: str | None = None,
                 skip_tls_verify: bool = False) -> None:
        self.bot = bot  # the service's own user (sender_localpart), used when no user_id is given
        self._settings = {"base_url": homeserver.rstrip("/"), "timeout": timeout, "verify": httpx_verify(ca_file, skip_tls_verify),
                          "headers": {"Authorization": f"Bearer {as_token}"}}
        self._http: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def http(self) -> httpx.AsyncClient:
        """The connection pool of the running event loop (a pool cannot outlive the loop it was opened in)."""
        loop = asyncio.get_running_loop()
        if self._http is None or self._loop is not loop:
            self._http, self._loop = httpx.AsyncClient(**self._settings), loop
        return self._http

    async def close(self) -> None:
        if self._http is not None and self._loop is asyncio.get_running_loop():
            await self._http.aclose()
        self._http = self._loop = None

    async def call(self, method: str, path: str, what: str, *, body: Any = None, params: dict[str, Any] | None = None,
                   content: bytes | None = None, headers: dict[str, str] | None = None, ok: tuple[str, ...] = ()) -> dict[str, Any]:
        """One request; an errcode listed in `ok` comes back as {"errcode": ...} instead of raising."""
        try:
            response = await self.http.request(method, path, json=body if content is None else None, content=content,
                                                params={k: v for k, v in (params or {}).items() if v is not None},
                                                headers=headers)
        except httpx.TransportError as exc:
            raise untrusted(exc, self._settings["base_url"]) or TransientError(f"{what}: {type(exc).__name__}: {exc}") from None
        try:
            answer = response.json() if response.content else {}
        except json.JSONDecodeError:
            answer = {"error": response.text[:200]}
        if response.status_code < 300:
            return answer
        errcode, error = answer.get("errcode", ""), answer.get("error", "")
        if response.status_code == 429 or response.status_code >= 500:
            retry = answer.get("retry_after_ms")
            note = " (the application service is rate limited: its registration should say rate_limited: false)" if response.status_code == 429 else ""
            raise TransientError(f"{what}: {response.status_code} {errcode} {error}".strip() + note, retry / 1000 if retry else None)
        if errcode in ok:
            return {"errcode": errcode, "error": error}
        raise MatrixError(response.status_code, errcode, error, what)

    # -- users ---------------------------------------------------------------------------------------------

    async def register(self, localpart: str) -> bool:
        """Registers a user of the service's namespace; False when it exists already."""
        answer = await self.call("POST", f"{CLIENT}/register", f"register {localpart}", ok=("M_USER_IN_USE",),
                                 body={"type": "m.login.application_service", "username": localpart, "inhibit_login": True})
        return "errcode" not in answer

    async def display_name(self, user: str) -> str | None:
        answer = await self.call("GET", f"{CLIENT}/profile/{_path(user)}/displayname", f"profile of {user}", ok=("M_NOT_FOUND",))
        return answer.get("displayname")

    async def set_display_name(self, user: str, name: str) -> None:
        await self.call("PUT", f"{CLIENT}/profile/{_path(user)}/displayname", f"name {user}",
                        params={"user_id": user}, body={"displayname": name})

    # -- rooms ---------------------------------------------------------------------------------------------

    async def resolve_alias(self, alias: str) -> str | None:
        answer = await self.call("GET", f"{CLIENT}/directory/room/{_path(alias)}", f"alias {alias}", ok=("M_NOT_FOUND",))
        return answer.get("room_id")

    async def create_room(self, body: dict[str, Any]) -> str | None:
        """The new room's id; None when its alias is taken meanwhile (another writer created it first)."""
        answer = await self.call("POST", f"{CLIENT}/createRoom", f"create room {body.get('room_alias_name')}",
                                 body=body, ok=("M_ROOM_IN_USE",))
        return answer.get("room_id")

    async def joined_members(self, room: str) -> set[str]:
        answer = await self.call("GET", f"{CLIENT}/rooms/{_path(room)}/joined_members", f"members of {room}")
        return set(answer.get("joined", {}))

    async def membership(self, room: str, user: str) -> str | None:
        answer = await self.call("GET", f"{CLIENT}/rooms/{_path(room)}/state/m.room.member/{_path(user)}",
                                 f"membership of {user}", ok=("M_NOT_FOUND",))
        return answer.get("membership")

    async def set_membership(self, room: str, user: str, membership: str, acting: str | None, ts: int | None,
                             name: str | None = None) -> None:
        """Invite or join through the state endpoint, which takes `ts` like a send does: an imported sender's join
        then carries the time of its first message instead of the day of the migration."""
        content = {"membership": membership, **({"displayname": name} if name else {})}
        await self.call("PUT", f"{CLIENT}/rooms/{_path(room)}/state/m.room.member/{_path(user)}", f"{membership} {user}",
                        params={"user_id": acting, "ts": ts}, body=content)

    async def exists(self, user: str) -> bool:
        try:
            await self.call("GET", f"{CLIENT}/profile/{_path(user)}", f"profile of {user}")
        except MatrixError as exc:
            if exc.status == 404:  # Synapse says M_NOT_FOUND or, for a local user without a profile row, M_UNKNOWN
                return False
            raise
        return True

    async def invite(self, room: str, user: str) -> None:
        await self.call("POST", f"{CLIENT}/rooms/{_path(room)}/invite", f"invite {user}", body={"user_id": user})


    # -- events --------------------------------------------------------------------------------------------

    async def send(self, room: str, event_type: str, txn: str, content: dict[str, Any], sender: str | None, ts: int | None) -> str:
        answer = await self.call("PUT", f"{CLIENT}/rooms/{_path(room)}/send/{_path(event_type)}/{_path(txn)}",
                                 f"send {event_type}", params={"user_id": sender, "ts": ts}, body=content)
        return answer["event_id"]

    async def redact(self, room: str, event_id: str, txn: str) -> None:
        await self.call("PUT", f"{CLIENT}/rooms/{_path(room)}/redact/{_path(event_id)}/{_path(txn)}", f"redact {event_id}", body={})

    async def event(self, room: str, event_id: str) -> dict[str, Any] | None:
        answer = await self.call("GET", f"{CLIENT}/rooms/{_path(room)}/event/{_path(event_id)}", f"event {event_id}", ok=("M_NOT_FOUND",))
        return None if "errcode" in answer else answer

    async def messages(self, room: str, start: str | None, limit: int = 500) -> tuple[list[dict[str, Any]], str | None]:
        """One page of the room's timeline, newest first, and the token of the next (older) page."""
        answer = await self.call("GET", f"{CLIENT}/rooms/{_path(room)}/messages", f"history of {room}",
                                 params={"dir": "b", "limit": limit, "from": start,
                                         "filter": json.dumps({"types": ["m.room.message", "m.reaction"], "lazy_load_members": True})})
        chunk = answer.get("chunk") or []
        return chunk, (answer.get("end") if chunk else None)

    async def upload(self, data: bytes, mimetype: str, filename: str, user: str | None) -> str:
        answer = await self.call("POST", f"{MEDIA}/upload", f"upload {filename}", content=data,
                                 params={"filename": filename, "user_id": user}, headers={"Content-Type": mimetype})
        return answer["content_uri"]

    async def download(self, mxc: str) -> bytes:
        server, media_id = mxc.removeprefix("mxc://").split("/", 1)
        response = await self.http.get(f"/_matrix/client/v1/media/download/{_path(server)}/{_path(media_id)}")
        if response.status_code != 200:
            raise MatrixError(response.status_code, "", response.text[:200], f"download {mxc}")
        return response.content
