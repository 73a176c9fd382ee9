"""The OCS API's envelope (v1: statuscode 100 and HTTP 200 even for most failures; v2: the HTTP
status as statuscode), in JSON or XML as the client asks, plus /cloud/capabilities, /cloud/user
and /status.php."""

from __future__ import annotations

import copy
from typing import Any
from xml.sax.saxutils import escape

from migrator.sandbox.nextcloud.http import Request, Response
from migrator.sandbox.nextcloud.instance import VERSION, Instance
from migrator.sandbox.nextcloud.namespace import UNLIMITED


class OcsError(Exception):
    def __init__(self, statuscode: int, message: str) -> None:
        super().__init__(message)
        self.statuscode, self.message = statuscode, message


def not_logged_in() -> OcsError:
    return OcsError(997, "Current user is not logged in")


def wants_json(request: Request) -> bool:
    fmt = request.query.get("format", "").lower()
    if fmt:
        return fmt == "json"
    return "application/json" in request.header("Accept").lower()


def envelope(request: Request, version: int, data: Any, statuscode: int | None = None, message: str = "OK") -> Response:
    """A success when `statuscode` is None, else a failure with that OCS status code."""
    if statuscode is None:
        ocs_status, http_status, status = (100 if version == 1 else 200), 200, "ok"
    else:
        ocs_status, status = statuscode, "failure"
        if statuscode == 997:
            http_status = 401
        elif version == 1:
            http_status = 200
        elif statuscode == 998:
            http_status = 404
        elif statuscode in (996, 999):
            http_status = 500
        elif statuscode < 200 or statuscode > 600:
            http_status = 400
        else:
            http_status = statuscode
    meta = {"status": status, "statuscode": ocs_status, "message": message, "totalitems": "", "itemsperpage": ""}
    body = {"ocs": {"meta": meta, "data": data}}
    if wants_json(request):
        return Response.json(body, http_status)
    return Response(http_status, to_xml(body["ocs"]).encode(), {"Content-Type": "application/xml; charset=utf-8"})


def to_xml(ocs: dict) -> str:
    return '<?xml version="1.0"?>\n<ocs>\n' + _xml(ocs["meta"], 1, "meta") + _xml(ocs["data"], 1, "data") + "</ocs>\n"


def _xml(value: Any, depth: int, name: str) -> str:
    pad = " " * depth
    if isinstance(value, dict):
        inner = "".join(_xml(v, depth + 1, str(k) if not str(k).isdigit() else "element") for k, v in value.items())
        return f"{pad}<{name}>\n{inner}{pad}</{name}>\n" if inner else f"{pad}<{name}/>\n"
    if isinstance(value, list):
        inner = "".join(_xml(v, depth + 1, "element") for v in value)
        return f"{pad}<{name}>\n{inner}{pad}</{name}>\n" if inner else f"{pad}<{name}/>\n"
    if value is None or value == "":
        return f"{pad}<{name}/>\n"
    if isinstance(value, bool):
        value = "1" if value else ""
        return f"{pad}<{name}>{value}</{name}>\n" if value else f"{pad}<{name}/>\n"
    return f"{pad}<{name}>{escape(str(value))}</{name}>\n"


def version_info() -> dict:
    major, minor, micro, _ = VERSION
    return {"major": major, "minor": minor, "micro": micro, "string": f"{major}.{minor}.{micro}", "edition": "",
            "extendedSupport": False}


def status(request: Request) -> Response:
    major, minor, micro, patch = VERSION
    return Response.json({"installed": True, "maintenance": False, "needsDbUpgrade": False,
                          "version": f"{major}.{minor}.{micro}.{patch}", "versionstring": f"{major}.{minor}.{micro}",
                          "edition": "", "productname": "Nextcloud", "extendedSupport": False})


def _merge(base: dict, overrides: dict) -> dict:
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def capabilities(instance: Instance) -> dict:
    settings = instance.settings
    public: dict[str, Any] = {"enabled": False}
    if settings.public_links:
        public = {"enabled": True, "password": {"enforced": False, "askForOptionalPassword": False},
                  "multiple_links": True, "expire_date": {"enabled": False}, "expire_date_internal": {"enabled": False},
                  "expire_date_remote": {"enabled": False}, "send_mail": False, "upload": True,
                  "upload_files_drop": True, "custom_tokens": False}
    files = {"bigfilechunking": True, "blacklisted_files": instance.names.forbidden_filenames,
             **instance.names.capabilities(),
             "chunked_upload": {"max_size": settings.max_chunk_size, "max_parallel_count": 5},
             "directEditing": {"url": "", "etag": "", "supportsFileId": True},
             "file_conversions": [], "windows_compatible_filenames": False}
    result = {
        "core": {"pollinterval": 60, "webdav-root": "remote.php/webdav", "reference-api": True,
                 "reference-regex": "(\\s|\\n|^)(https?:\\/\\/)((?:[-A-Z0-9+_]+\\.)+[-A-Z]+(?:\\/[-A-Z0-9+&@#%?=~_|!:,.;()]*)*)(\\s|\\n|$)",
                 "mod-rewrite-working": False},
        "bruteforce": {"delay": 0, "allow-listed": False},
        "dav": {"chunking": "1.0", "public_shares_chunking": True},
        "files": files,
        "files_sharing": {
            "api_enabled": True, "public": public, "resharing": True, "group_sharing": settings.group_sharing,
            "user": {"send_mail": False, "expire_date": {"enabled": True}},
            "group": {"enabled": settings.group_sharing, "expire_date": {"enabled": True}},
            "default_permissions": 31,
            "federation": {"outgoing": False, "incoming": False, "expire_date": {"enabled": True},
                           "expire_date_supported": {"enabled": True}},
            "sharee": {"query_lookup_default": False, "always_show_unique": True},
        },
    }
    return _merge(result, copy.deepcopy(settings.capabilities))


def user_info(instance: Instance, user: str) -> dict:
    home = instance.namespace.home(user)
    used = instance.store.used_bytes(instance.store.disk(home.storage_root))
    if home.quota == UNLIMITED:
        quota = {"free": 1 << 40, "used": used, "total": used + (1 << 40), "relative": 0.0, "quota": UNLIMITED}
    else:
        free = max(0, home.quota - used)
        quota = {"free": free, "used": used, "total": home.quota,
                 "relative": round(100.0 * used / home.quota, 2) if home.quota else 0.0, "quota": home.quota}
    return {"enabled": True, "storageLocation": str(instance.store.disk(home.storage_root)), "id": user,
            "lastLogin": 0, "backend": "Database", "subadmin": [], "quota": quota, "manager": "",
            "email": None, "additional_mail": [], "displayname": user, "display-name": user, "phone": "",
            "address": "", "website": "", "twitter": "", "fediverse": "", "organisation": "", "role": "",
            "headline": "", "biography": "", "profile_enabled": "1", "groups": instance.namespace.user_groups(user),
            "language": "en", "locale": "", "notify_email": None, "backendCapabilities": {"setDisplayName": True, "setPassword": True}}
