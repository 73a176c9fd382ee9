from __future__ import annotations

import pytest

from mappings.identity import IdentityConflict, check_one_to_one, resolve_identity

TEMPLATES = {"imap_login": "{upn}", "nextcloud_user": "{local}", "matrix_id": "@{local}:{domain}"}


@pytest.mark.parametrize(
    ("upn", "overrides", "expected"),
    [
        ("ada@example.org", {}, ("ada@example.org", "ada", "@ada:example.org")),
        ("Ada@Example.org", {"ada@example.org": {"nextcloud_user": "alovelace"}}, ("Ada@Example.org", "alovelace", "@Ada:Example.org")),
    ],
)
def test_templates_and_overrides(upn, overrides, expected):
    ident = resolve_identity(upn, TEMPLATES, overrides)
    assert (ident.imap_login, ident.nextcloud_user, ident.matrix_id) == expected
    assert ident.for_workload("files") == expected[1] and ident.for_workload("chat") == expected[2]


def test_two_users_on_one_target_account_is_refused():
    a = resolve_identity("ada@example.org", TEMPLATES, {})
    b = resolve_identity("ada@other.example", TEMPLATES, {})
    with pytest.raises(IdentityConflict, match="ada@example.org and ada@other.example both map to nextcloud_user 'ada'"):
        check_one_to_one([a, b])
    check_one_to_one([a, resolve_identity("bob@example.org", TEMPLATES, {})])
