"""Who a Microsoft 365 user becomes on each target: templates plus explicit overrides."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

TARGET_FIELDS = ("imap_login", "nextcloud_user", "matrix_id")
PLACEHOLDERS = ("upn", "local", "domain")


@dataclass(frozen=True)
class Identity:
    upn: str
    imap_login: str
    nextcloud_user: str
    matrix_id: str

    def for_workload(self, workload: str) -> str:
        return {
            "mail": self.imap_login,
            "calendar": self.nextcloud_user,
            "contacts": self.nextcloud_user,
            "files": self.nextcloud_user,
            "chat": self.matrix_id,
        }[workload]


class IdentityConflict(ValueError):
    pass


def render(template: str, upn: str) -> str:
    local, _, domain = upn.partition("@")
    return template.format(upn=upn, local=local, domain=domain)


def resolve_identity(upn: str, templates: Mapping[str, str], overrides: Mapping[str, Mapping[str, str]]) -> Identity:
    """An override row for the UPN (case-insensitive) wins over the templates, field by field."""
    row = overrides.get(upn.lower(), {})
    values = {name: (row.get(name) or render(templates[name], upn)) for name in TARGET_FIELDS}
    return Identity(upn=upn, **values)


def check_one_to_one(identities: Iterable[Identity]) -> None:
    """Two source users must never land in one target account."""
    for name in TARGET_FIELDS:
        seen: dict[str, str] = {}
        for ident in identities:
            value = getattr(ident, name).lower()
            if value in seen and seen[value] != ident.upn:
                raise IdentityConflict(f"{seen[value]} and {ident.upn} both map to {name} {getattr(ident, name)!r}")
            seen[value] = ident.upn
