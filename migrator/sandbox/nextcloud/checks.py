"""What a write must satisfy, checked as Nextcloud checks it: the name, the permissions of the
place, If-Match / If-None-Match, the quota (from OC-Total-Length or Content-Length before the
body, and again while it streams), X-OC-MTime's form, and a body as long as announced."""

from __future__ import annotations

import re
from collections.abc import Iterator

from migrator.sandbox.nextcloud.http import (
    Request,
    bad_request,
    forbidden,
    insufficient_storage,
    invalid_path,
    precondition_failed,
)
from migrator.sandbox.nextcloud.instance import Instance
from migrator.sandbox.nextcloud.namespace import Location


def requested_mtime(request: Request) -> float | None:
    value = request.header("X-OC-MTime")
    if not value:
        return None
    if not re.fullmatch(r"-?\d+(\.\d+)?", value.strip()):
        raise bad_request("X-OC-MTime header must be an integer (unix timestamp).")
    return float(int(float(value)))


def check_preconditions(request: Request, etag: str | None) -> None:
    """If-Match / If-None-Match as Sabre checks them; `etag` is None when nothing is there."""
    if_match = request.header("If-Match")
    if if_match:
        if etag is None:
            raise precondition_failed("An If-Match header was specified and the resource did not exist")
        tags = [t.strip() for t in if_match.split(",")]
        if "*" not in tags and f'"{etag}"' not in tags and etag not in tags:
            raise precondition_failed("An If-Match header was specified, but none of the specified ETags matched.")
    if_none_match = request.header("If-None-Match")
    if if_none_match and etag is not None:
        tags = [t.strip() for t in if_none_match.split(",")]
        if "*" in tags or f'"{etag}"' in tags or etag in tags:
            raise precondition_failed("An If-None-Match header was specified, but the ETag matched (or * was specified).")


def check_quota(instance: Instance, location: Location, length: int | None) -> None:
    if length is None:
        return
    free = instance.namespace.free_bytes(location.mount)
    if free >= 0 and length > free:
        where = "/" + location.parent_path if location.parent_path else "/"
        raise insufficient_storage(f"Insufficient space in {where}, {length} required, {free} available")


def declared_length(request: Request) -> int | None:
    for name in ("OC-Total-Length", "Content-Length"):
        value = request.header(name)
        if value.isdigit():
            return int(value)
    return None


def upload_body(instance: Instance, request: Request, free: int, where: str) -> Iterator[bytes]:
    """An upload's body, piece by piece; a short body, or one beyond the free space, fails it."""
    expected = request.content_length
    received = 0
    for piece in instance.upload_pieces(request):
        received += len(piece)
        if free >= 0 and received > free:
            raise insufficient_storage(f"Insufficient space in /{where}, {received} required, {free} available")
        yield piece
    if expected is not None and received != expected:
        raise bad_request(f"Expected filesize of {expected} bytes but read (from Nextcloud client) and wrote "
                          f"(to Nextcloud storage) {received} bytes. Could either be a network problem on the "
                          "sending side or a problem writing to the storage on the server side.")


def check_name(instance: Instance, location: Location) -> None:
    problem = instance.names.problem(location.name)
    if problem:
        raise invalid_path(problem)


def require(location: Location, permission: int, message: str) -> None:
    if not location.mount.permissions & permission:
        raise forbidden(message)
