"""Files mapping: golden targets for the awkward cases a OneDrive holds, and properties of the
name rule (always legal, never two originals on one name, no way out of the container)."""

from __future__ import annotations

import json
import os
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mappings.file_names import MAX_NAME_BYTES, NameRules, legal_name
from mappings.files import FileOptions, container_path, map_drive_item
from migrator.model import Container, Item, ItemRef, Payload, Skip, Target

GOLDEN = Path(__file__).parent / "golden" / "files"
CASES = sorted(GOLDEN.glob("*.json"))
CASES = [c for c in CASES if not c.name.endswith(".expected.json")]
DOMAIN = "contoso.example"


def _account(address: str) -> str | None:
    local, _, domain = address.partition("@")
    return local if domain == DOMAIN else None


OPTIONS = FileOptions(account_of=_account, groups={"Leden van Financien": "financien"})


def _map(case: dict) -> Target | Skip:
    role = case.get("role", "onedrive")
    container = Container("b!drive", "OneDrive", "files", tuple(case.get("container", ["OneDrive"])), role)
    ref = ItemRef(case["item"]["id"], case["item"]["eTag"], "folder" if "folder" in case["item"] else "file", case["path"], case["item"].get("size"))
    item = Item(ref, Payload.from_bytes(b""), {"item": case["item"], "path": case["path"], "permissions": case.get("permissions", [])})
    return map_drive_item(item, container, OPTIONS)


def _rendered(case: dict) -> dict:
    mapped = _map(case)
    if isinstance(mapped, Skip):
        return {"skip": mapped.reason}
    role = case.get("role", "onedrive")
    container = Container("b!drive", "x", "files", tuple(case.get("container", ["OneDrive"])), role)
    return {"container_path": list(container_path(container, OPTIONS)), "dest_key": mapped.dest_key, "metadata": mapped.metadata}


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_golden_targets(case: Path):
    rendered = _rendered(json.loads(case.read_text()))
    expected = case.with_suffix(".expected.json")
    if os.environ.get("UPDATE_GOLDEN"):
        expected.write_text(json.dumps(rendered, ensure_ascii=False, indent=1, sort_keys=True) + "\n")
    assert rendered == json.loads(expected.read_text())


def test_golden_details():
    def golden(name: str) -> dict:
        return json.loads((GOLDEN / f"{name}.expected.json").read_text())

    assert golden("plain_document")["dest_key"] == "Documenten/Beleid/Beleidsnota klimaat.docx"
    assert golden("plain_document")["metadata"]["mtime"] == 1709633472.0  # fileSystemInfo, not the upload time
    assert golden("nfd_name_becomes_nfc")["dest_key"] == unicodedata.normalize("NFC", "Documenten/Presentatie café – Übersicht.pptx")
    assert "renamed" not in golden("nfd_name_becomes_nfc")["metadata"]
    assert golden("htaccess_forbidden_name")["metadata"]["renamed"]["why"] == ["reserved name"]
    assert golden("part_extension")["dest_key"].startswith("Lastige namen/download_part~")
    assert not golden("dot_dot_cannot_escape")["dest_key"].startswith("..")
    shared = golden("folder_shared_read_and_write")["metadata"]["shares"]
    assert [(s["type"], s["with"], s["access"]) for s in shared] == [("user", "bob.devries", "edit"), ("user", "cara.jansen", "read")]
    assert golden("inherited_grants_are_not_repeated")["metadata"]["shares"] == []
    assert "organisation-wide" in golden("organisation_link_is_dropped_with_reason")["metadata"]["shares_dropped"][0]
    assert golden("anonymous_edit_link")["metadata"]["shares"][0]["type"] == "link"
    assert golden("group_grant_in_a_library")["container_path"] == ["Financien", "Documenten"]
    assert golden("group_grant_in_a_library")["metadata"]["shares"][0]["with"] == "financien"
    assert "no account" in golden("grant_to_an_outsider_without_account")["metadata"]["shares_dropped"][0]
    assert "skip" in golden("onenote_package_is_skipped")


RULES = NameRules.nextcloud_defaults()
WINDOWS = NameRules.from_capabilities({
    "forbidden_filename_characters": list('<>:"|?*\\/'),
    "forbidden_filename_basenames": ["con", "prn", "aux", "nul", "com1", "lpt1"],
    "forbidden_filename_extensions": [" ", ".", ".filepart", ".part"],
    "forbidden_filenames": [".htaccess"],
})
names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=300)


def _is_legal(name: str, rules: NameRules) -> bool:
    base = name.split(".", 1)[0].lower()
    trailing = [e for e in rules.forbidden_extensions if e in (" ", ".")]
    return (
        name not in ("", ".", "..")
        and len(name.encode("utf-8")) <= rules.max_name_bytes
        and not any(ch in rules.forbidden_characters or ord(ch) < 32 or ord(ch) == 127 for ch in name)
        and name.lower() not in rules.forbidden_names
        and base not in rules.forbidden_basenames
        and not any(name.lower().endswith(e) for e in rules.forbidden_extensions if e.strip(" ."))
        and not any(name.endswith(t) for t in trailing)
        and name == unicodedata.normalize("NFC", name)
    )


@settings(max_examples=300, deadline=None)
@given(names, st.sampled_from([RULES, WINDOWS]))
def test_every_name_becomes_legal(name, rules):
    assert _is_legal(legal_name(name, rules).name, rules)


@settings(max_examples=300, deadline=None)
@given(names, names)
def test_two_different_names_never_share_a_legal_name(a, b):
    if unicodedata.normalize("NFC", a) != unicodedata.normalize("NFC", b):
        assert legal_name(a, WINDOWS).name != legal_name(b, WINDOWS).name


@settings(max_examples=200, deadline=None)
@given(names)
def test_a_legal_name_is_kept(name):
    first = legal_name(name, RULES)
    if not first.reasons:
        assert legal_name(first.name, RULES) == first


def test_a_long_name_is_cut_to_the_limit_keeping_its_extension():
    result = legal_name("é" * 300 + ".docx", RULES)
    assert result.name.endswith(".docx") and len(result.name.encode()) <= MAX_NAME_BYTES
    assert result.reasons == ("too long",)


def test_windows_rules_from_capabilities():
    assert legal_name("con.txt", WINDOWS).name.startswith("_con")
    assert legal_name("a:b?.txt", WINDOWS).name.startswith("a_b_~")
    assert legal_name("Versie 2.", WINDOWS).name.startswith("Versie 2_~")
