"""Request dispatch: /status.php, OCS (v1 and v2), the groupfolders API, files and uploads over
WebDAV, each behind Basic authentication with the answers Nextcloud gives when it fails."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from typing import Any

from migrator.sandbox.nextcloud import ocs
from migrator.sandbox.nextcloud.chunking import Uploads, split_uploads_path
from migrator.sandbox.nextcloud.dav import FilesDav, split_files_path
from migrator.sandbox.nextcloud.groupfolders import GroupFolders
from migrator.sandbox.nextcloud.http import (
    REASONS,
    SABRE,
    ConnectionCut,
    DavError,
    Request,
    Response,
    basic_credentials,
    check_segments,
)
from migrator.sandbox.nextcloud.instance import CLOSE_KEY, Instance, drop_connection
from migrator.sandbox.nextcloud.ocs import OcsError
from migrator.sandbox.nextcloud.search import search
from migrator.sandbox.nextcloud.shares import Shares

log = logging.getLogger(__name__)
REALM = 'Basic realm="Nextcloud", charset="UTF-8"'
NO_CREDENTIALS = ("No public access to this resource., No 'Authorization: Basic' header found. Either the client "
                  "didn't send one, or the server is misconfigured, No 'Authorization: Bearer' header found. Either "
                  "the client didn't send one, or the server is mis-configured, No 'Authorization: Basic' header "
                  "found. Either the client didn't send one, or the server is misconfigured")
BAD_CREDENTIALS = ("No public access to this resource., Username or password was incorrect, No 'Authorization: "
                   "Bearer' header found. Either the client didn't send one, or the server is mis-configured, "
                   "Username or password was incorrect")
OCS_PATH = re.compile(r"^/ocs/v([12])\.php/(.*)$")
GROUPFOLDERS_PATH = re.compile(r"^(?:/index\.php)?/apps/groupfolders/(.*)$")
SHARES = "apps/files_sharing/api/v1/shares"


class NextcloudApp:
    """The WSGI application."""

    def __init__(self, instance: Instance) -> None:
        self.instance = instance
        self.files = FilesDav(instance)
        self.uploads = Uploads(instance, self.files)
        self.shares = Shares(instance)
        self.group_folders = GroupFolders(instance)

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        request = Request(environ)
        try:
            response = self.dispatch(request)
        except DavError as exc:
            response = exc.response()
        except ConnectionCut:
            drop_connection(environ)
            start_response("500 Internal Server Error", [("Connection", "close"), ("Content-Length", "0")])
            return []
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            response = DavError(500, SABRE + "Exception", "Internal Server Error").response()
        status = response.status
        headers = [(k, v) for k, v in response.headers.items()]
        if (request.content_length or 0) > request.read_bytes and CLOSE_KEY in environ:
            environ[CLOSE_KEY]()  # an unread upload is not drained into memory: the connection ends
        if isinstance(response.body, bytes):
            if not any(k.lower() == "content-length" for k, _ in headers) and request.method != "HEAD":
                headers.append(("Content-Length", str(len(response.body))))
            body: Iterable[bytes] = [response.body] if request.method != "HEAD" else []
        else:
            body = response.body
        start_response(f"{status} {REASONS.get(status, 'Unknown')}", headers)
        return body

    def dispatch(self, request: Request) -> Response:
        path = request.path
        if path in ("/status.php", "/index.php/status.php"):
            return ocs.status(request)
        if match := OCS_PATH.match(path):
            return self.ocs(request, int(match.group(1)), match.group(2).rstrip("/"))
        if match := GROUPFOLDERS_PATH.match(path):
            return self.ocs(request, 1, "", groupfolders=match.group(1))
        if path.startswith("/remote.php/"):
            return self.dav(request)
        raise DavError(404, SABRE + "NotFound", "Page not found")

    def login(self, request: Request) -> str | None:
        credentials = basic_credentials(request.environ)
        user = self.instance.authenticate(credentials)
        request.user = user
        return user

    def dav(self, request: Request) -> Response:
        if self.login(request) is None:
            message = NO_CREDENTIALS if basic_credentials(request.environ) is None else BAD_CREDENTIALS
            raise DavError(401, SABRE + "NotAuthenticated", message, {"WWW-Authenticate": REALM})
        assert request.user is not None
        check_segments(request.path)
        if request.method == "SEARCH" and request.path.rstrip("/") == "/remote.php/dav":
            return search(self.files, request)
        if request.path.startswith("/remote.php/webdav"):
            return self.files.handle(request, request.user, request.path[len("/remote.php/webdav"):])
        if files := split_files_path(request.path):
            return self.files.handle(request, *files)
        if uploads := split_uploads_path(request.path):
            return self.uploads.handle(request, *uploads)
        raise DavError(404, SABRE + "NotFound", f"File with name {request.path} could not be located")

    def ocs(self, request: Request, version: int, route: str, groupfolders: str | None = None) -> Response:
        try:
            if request.header("OCS-APIRequest").lower() != "true":
                raise ocs.not_logged_in()
            user = self.login(request)
            if user is None and (basic_credentials(request.environ) is not None or route != "cloud/capabilities"):
                raise ocs.not_logged_in()
            if groupfolders is not None:
                assert user is not None
                return ocs.envelope(request, version, self.group_folders.handle(request, user, groupfolders))
            return ocs.envelope(request, version, self.ocs_route(request, user, route))
        except OcsError as exc:
            return ocs.envelope(request, version, [], exc.statuscode, exc.message)

    def ocs_route(self, request: Request, user: str | None, route: str) -> Any:
        method = request.method
        if route == "cloud/capabilities" and method == "GET":
            return {"version": ocs.version_info(), "capabilities": ocs.capabilities(self.instance)}
        assert user is not None
        if route == "cloud/user" and method == "GET":
            return ocs.user_info(self.instance, user)
        if route == SHARES:
            if method == "GET":
                return self.shares.list(request, user)
            if method == "POST":
                return self.shares.create(request, user)
        if route.startswith(SHARES + "/"):
            share_id = route[len(SHARES) + 1:]
            if method == "GET":
                return self.shares.get(request, user, share_id)
            if method == "PUT":
                return self.shares.update(request, user, share_id)
            if method == "DELETE":
                return self.shares.delete(request, user, share_id)
        raise OcsError(998, "Invalid query, please check the syntax. API specifications are here: "
                            "http://www.freedesktop.org/wiki/Specifications/open-collaboration-services.")
