"""Mail folder rules: special-use roles whatever the language, precedence, one-to-one checks,
the TOML table, and IMAP's modified UTF-7."""

from __future__ import annotations

import tomllib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mappings import imap_utf7
from mappings.mail_folders import (
    FolderRules,
    check_one_to_one,
    format_path,
    missing_sources,
    parse_path,
    special_use_flag,
    target_path,
    well_known_paths,
)
from migrator.errors import ConfigError
from migrator.model import Container

# A Dutch mailbox as the Graph reader lists it: display names from the top, roles on well-known folders.
DUTCH = [
    ("inbox", ("Postvak IN",)),
    ("", ("Postvak IN", "Nieuwsbrieven")),
    ("", ("Postvak IN", "Nieuwsbrieven", "2025")),
    ("drafts", ("Concepten",)),
    ("sentitems", ("Verzonden items",)),
    ("deleteditems", ("Verwijderde items",)),
    ("junkemail", ("Ongewenste e-mail",)),
    ("archive", ("Archief",)),
    ("", ("Archief", "2024")),
    ("", ("Archief", "2024", "Q1")),
    ("outbox", ("Postvak UIT",)),
    ("", ("Postvak UIT", "Vastgelopen")),
    ("", ("Projecten",)),
    ("", ("Projecten", "2026")),
    ("", ("Projecten", "2026", "Offertes")),
    ("", ("Projecten", "Oud")),
]


def mailbox(entries=DUTCH) -> list[Container]:
    return [Container("id-" + "/".join(path), path[-1], "mail", path, role) for role, path in entries]


def targets(rules: FolderRules, entries=DUTCH) -> dict[tuple[str, ...], tuple[str, ...] | None]:
    by_id = check_one_to_one(mailbox(entries), rules)
    return {path: by_id["id-" + "/".join(path)] for _, path in entries}


# ------------------------------------------------------------------------------ roles


def test_dutch_well_known_folders_land_in_their_special_use_names():
    placed = targets(FolderRules())
    assert placed[("Postvak IN",)] == ("INBOX",)
    assert placed[("Concepten",)] == ("Drafts",)
    assert placed[("Verzonden items",)] == ("Sent",)
    assert placed[("Verwijderde items",)] == ("Trash",)
    assert placed[("Ongewenste e-mail",)] == ("Junk",)
    assert placed[("Archief",)] == ("Archive",)
    assert placed[("Projecten", "2026")] == ("Projecten", "2026")


def test_children_of_well_known_folders_follow_their_parent():
    placed = targets(FolderRules())
    assert placed[("Postvak IN", "Nieuwsbrieven")] == ("INBOX", "Nieuwsbrieven")
    assert placed[("Postvak IN", "Nieuwsbrieven", "2025")] == ("INBOX", "Nieuwsbrieven", "2025")
    assert placed[("Archief", "2024", "Q1")] == ("Archive", "2024", "Q1")


def test_the_outbox_and_its_children_are_not_migrated():
    placed = targets(FolderRules())
    assert placed[("Postvak UIT",)] is None
    assert placed[("Postvak UIT", "Vastgelopen")] is None


def test_target_path_alone_knows_only_the_container_s_own_role():
    child = Container("c", "Nieuwsbrieven", "mail", ("Postvak IN", "Nieuwsbrieven"), "")
    assert target_path(child, FolderRules()) == ("Postvak IN", "Nieuwsbrieven")
    assert target_path(child, FolderRules(), well_known_paths(mailbox())) == ("INBOX", "Nieuwsbrieven")


def test_special_use_names_can_be_overridden_and_children_follow():
    rules = FolderRules(special_use_names={"sentitems": "Sent Items", "deleteditems": "Deleted Items"})
    placed = targets(rules, [*DUTCH, ("", ("Verzonden items", "2025"))])
    assert placed[("Verzonden items",)] == ("Sent Items",)
    assert placed[("Verzonden items", "2025")] == ("Sent Items", "2025")
    assert placed[("Verwijderde items",)] == ("Deleted Items",)


def test_special_use_flags_belong_to_the_well_known_folder_only():
    folders = {c.path: c for c in mailbox()}
    assert special_use_flag(folders[("Verzonden items",)]) == "\\Sent"
    assert special_use_flag(folders[("Concepten",)]) == "\\Drafts"
    assert special_use_flag(folders[("Verwijderde items",)]) == "\\Trash"
    assert special_use_flag(folders[("Ongewenste e-mail",)]) == "\\Junk"
    assert special_use_flag(folders[("Archief",)]) == "\\Archive"
    assert special_use_flag(folders[("Postvak IN",)]) is None
    assert special_use_flag(folders[("Archief", "2024")]) is None
    assert special_use_flag(folders[("Postvak UIT",)]) is None


# ------------------------------------------------------------------------- precedence

P = parse_path
PRECEDENCE = [
    # (rules, source path, expected target)
    ("plain", FolderRules(), "Projecten/2026/Offertes", ("Projecten", "2026", "Offertes")),
    ("rename keeps the rest", FolderRules(rename={P("Projecten"): P("Projects")}), "Projecten/2026/Offertes", ("Projects", "2026", "Offertes")),
    ("longest rename wins", FolderRules(rename={P("Projecten"): P("Projects"), P("Projecten/2026"): P("Current")}), "Projecten/2026/Offertes", ("Current", "Offertes")),
    ("shorter rename elsewhere", FolderRules(rename={P("Projecten"): P("Projects"), P("Projecten/2026"): P("Current")}), "Projecten/Oud", ("Projects", "Oud")),
    ("rename beats merge", FolderRules(rename={P("Projecten/2026"): P("P26")}, merge={P("Projecten"): P("Archive")}), "Projecten/2026", ("P26",)),
    ("merge where no rename", FolderRules(rename={P("Projecten/2026"): P("P26")}, merge={P("Projecten"): P("Archive")}), "Projecten/Oud", ("Archive", "Oud")),
    ("merge keeps the rest", FolderRules(merge={P("Archief/2024"): P("Archive")}), "Archief/2024/Q1", ("Archive", "Q1")),
    ("exclude beats everything", FolderRules(exclude=frozenset({P("Projecten")})), "Projecten/2026", None),
    ("exclude takes the subtree", FolderRules(exclude=frozenset({P("Postvak IN/Nieuwsbrieven")})), "Postvak IN/Nieuwsbrieven/2025", None),
    ("exclude is not a name prefix", FolderRules(exclude=frozenset({P("Projecten/20")})), "Projecten/2026", ("Projecten", "2026")),
    ("rename beats role", FolderRules(rename={P("Verzonden items"): P("Old/Sent")}), "Verzonden items", ("Old", "Sent")),
    ("merge beats role", FolderRules(merge={P("Postvak IN/Nieuwsbrieven"): P("Newsletters")}), "Postvak IN/Nieuwsbrieven/2025", ("Newsletters", "2025")),
    ("a rule can rescue the outbox", FolderRules(rename={P("Postvak UIT"): P("Outbox")}), "Postvak UIT/Vastgelopen", ("Outbox", "Vastgelopen")),
    ("targets are not fed to other rules", FolderRules(rename={P("Projecten/Oud"): P("Archief/Oud")}), "Projecten/Oud", ("Archief", "Oud")),
    ("inbox in any case is INBOX", FolderRules(rename={P("Projecten/2026"): P("inbox/2026")}), "Projecten/2026", ("INBOX", "2026")),
]


@pytest.mark.parametrize(("rules", "source", "expected"), [c[1:] for c in PRECEDENCE], ids=[c[0] for c in PRECEDENCE])
def test_precedence(rules, source, expected):
    by_path = {c.path: c for c in mailbox()}
    container = by_path[parse_path(source)]
    assert target_path(container, rules, well_known_paths(by_path.values())) == expected


def test_check_one_to_one_gives_every_folder_its_target():
    rules = FolderRules(
        rename={P("Projecten/2026"): P("Projects/2026")},
        merge={P("Archief/2024"): P("Archive")},
        exclude=frozenset({P("Postvak IN/Nieuwsbrieven")}),
        special_use_names={"sentitems": "Sent Items"},
    )
    placed = targets(rules)
    assert placed == {
        ("Postvak IN",): ("INBOX",),
        ("Postvak IN", "Nieuwsbrieven"): None,
        ("Postvak IN", "Nieuwsbrieven", "2025"): None,
        ("Concepten",): ("Drafts",),
        ("Verzonden items",): ("Sent Items",),
        ("Verwijderde items",): ("Trash",),
        ("Ongewenste e-mail",): ("Junk",),
        ("Archief",): ("Archive",),
        ("Archief", "2024"): ("Archive",),
        ("Archief", "2024", "Q1"): ("Archive", "Q1"),
        ("Postvak UIT",): None,
        ("Postvak UIT", "Vastgelopen"): None,
        ("Projecten",): ("Projecten",),
        ("Projecten", "2026"): ("Projects", "2026"),
        ("Projecten", "2026", "Offertes"): ("Projects", "2026", "Offertes"),
        ("Projecten", "Oud"): ("Projecten", "Oud"),
    }


# -------------------------------------------------------------------------- collisions


def test_two_folders_on_one_target_are_refused_naming_both():
    with_sent = [*DUTCH, ("", ("Sent",))]
    with pytest.raises(ConfigError) as caught:
        check_one_to_one(mailbox(with_sent), FolderRules())
    assert '"Verzonden items"' in str(caught.value) and '"Sent"' in str(caught.value)
    assert "add a [mail.folders.rename] rule for one of them" in caught.value.hint


def test_a_rename_onto_an_existing_folder_is_refused():
    with pytest.raises(ConfigError, match='"Archief/2024" and "Archief"|"Archief" and "Archief/2024"') as caught:
        check_one_to_one(mailbox(), FolderRules(rename={P("Archief/2024"): P("Archive")}))
    assert "rename" in caught.value.hint


def test_a_merge_rule_lets_folders_share_a_target():
    placed = targets(FolderRules(merge={P("Archief/2024"): P("Archive")}))
    assert placed[("Archief",)] == placed[("Archief", "2024")] == ("Archive",)
    both = targets(FolderRules(merge={P("Projecten/Oud"): P("Old"), P("Archief/2024"): P("Old")}))
    assert both[("Projecten", "Oud")] == both[("Archief", "2024")] == ("Old",)


def test_a_merge_elsewhere_does_not_excuse_an_accidental_collision():
    entries = [*DUTCH, ("", ("Archive",))]
    with pytest.raises(ConfigError, match='"Archief" and "Archive"'):
        check_one_to_one(mailbox(entries), FolderRules(merge={P("Archief/2024"): P("Archive")}))
    # Saying the folder itself merges is how to keep both.
    placed = targets(FolderRules(merge={P("Archive"): P("Archive")}), entries)
    assert placed[("Archive",)] == placed[("Archief",)] == ("Archive",)


def test_a_folder_spelled_inbox_collides_with_the_inbox():
    with pytest.raises(ConfigError, match='"Postvak IN" and "Inbox"'):
        check_one_to_one(mailbox([*DUTCH, ("", ("Inbox",))]), FolderRules())


def test_special_use_overrides_that_collide_are_refused():
    with pytest.raises(ConfigError, match='"Verzonden items" and "Archief"|"Archief" and "Verzonden items"'):
        check_one_to_one(mailbox(), FolderRules(special_use_names={"sentitems": "Archive"}))


# --------------------------------------------------------------------- rule mistakes


@pytest.mark.parametrize(
    "rules",
    [
        FolderRules(rename={P("Projecten/2026"): P("Projecten/Oud"), P("Projecten/Oud"): P("Projecten/2026")}),
        FolderRules(rename={P("Projecten"): P("Archief/Projecten")}, merge={P("Archief"): P("Projecten/Archief")}),
        FolderRules(rename={P("Concepten"): P("Projecten/C"), P("Projecten"): P("Archief/P")}, merge={P("Archief"): P("Concepten")}),
    ],
    ids=["swap", "rename-merge", "three"],
)
def test_rule_loops_are_refused(rules):
    with pytest.raises(ConfigError, match="loop") as caught:
        check_one_to_one(mailbox(), rules)
    assert caught.value.hint == "remove the rule or fix its path"


def test_a_folder_nested_below_itself_is_a_loop():
    with pytest.raises(ConfigError, match="loop"):
        check_one_to_one(mailbox(), FolderRules(rename={P("Projecten"): P("Projecten/Alles")}))


def test_rules_that_keep_a_subfolder_in_place_are_no_loop():
    rules = FolderRules(rename={P("Projecten"): P("Projects"), P("Projecten/Oud"): P("Projecten/Oud")})
    placed = targets(rules)
    assert placed[("Projecten", "Oud")] == ("Projecten", "Oud")
    assert placed[("Projecten", "2026")] == ("Projects", "2026")


def test_a_chain_without_a_loop_is_applied_once():
    placed = targets(FolderRules(rename={P("Projecten/Oud"): P("Old"), P("Old"): P("Older")}, merge={}), [*DUTCH, ("", ("Old",))])
    assert placed[("Projecten", "Oud")] == ("Old",)
    assert placed[("Old",)] == ("Older",)


@pytest.mark.parametrize(
    ("rules", "named"),
    [
        (FolderRules(rename={P("Projecten/2027"): P("Projects/2027")}), '[mail.folders.rename] "Projecten/2027"'),
        (FolderRules(merge={P("Archief/2023"): P("Archive")}), '[mail.folders.merge] "Archief/2023"'),
        (FolderRules(exclude=frozenset({P("Postvak IN/Spam")})), 'mail.folders.exclude entry "Postvak IN/Spam"'),
    ],
)
def test_a_rule_for_a_missing_folder_is_refused(rules, named):
    with pytest.raises(ConfigError) as caught:
        check_one_to_one(mailbox(), rules)
    assert named in str(caught.value)
    assert caught.value.hint == "remove the rule or fix its path"


def test_missing_sources_can_be_checked_across_mailboxes_instead():
    rules = FolderRules(rename={P("Projecten/2027"): P("Projects/2027")})
    check_one_to_one(mailbox(), rules, require_sources=False)
    other = mailbox([("", ("Projecten",)), ("", ("Projecten", "2027"))])
    assert missing_sources(mailbox(), rules) == ['[mail.folders.rename] "Projecten/2027"']
    assert missing_sources(mailbox() + other, rules) == []


def test_a_rule_that_never_applies_is_refused():
    rules = FolderRules(rename={P("Projecten/2026"): P("P26")}, exclude=frozenset({P("Projecten")}))
    with pytest.raises(ConfigError, match=r'\[mail.folders.rename\] "Projecten/2026" never applies'):
        check_one_to_one(mailbox(), rules)
    rules = FolderRules(rename={P("Projecten"): P("P")}, merge={P("Projecten/Oud"): P("Archive")})
    with pytest.raises(ConfigError, match=r'\[mail.folders.merge\] "Projecten/Oud" never applies'):
        check_one_to_one(mailbox(), rules)


def test_names_a_server_cannot_hold_are_refused_but_slashes_are_kept():
    entries = [*DUTCH, ("", ("Klanten/Leveranciers",)), ("", ("Projecten", "v1.2"))]
    placed = targets(FolderRules(), entries)
    assert placed[("Klanten/Leveranciers",)] == ("Klanten/Leveranciers",)
    with pytest.raises(ConfigError, match="control character") as caught:
        check_one_to_one(mailbox([*DUTCH, ("", ("Tab\there",))]), FolderRules())
    assert "rename" in caught.value.hint
    with pytest.raises(ConfigError, match="separator '.'"):
        check_one_to_one(mailbox(entries), FolderRules(), separator=".")
    with pytest.raises(ConfigError, match="'..'"):
        check_one_to_one(mailbox(), FolderRules(rename={P("Projecten"): ("..",)}))


# ------------------------------------------------------------------------------ TOML

EXAMPLE = r"""
[mail.folders]
exclude = ["Postvak IN/Nieuwsbrieven"]
[mail.folders.rename]
"Projecten/2026" = "Projects/2026"
'Klanten\/Leveranciers' = "Relaties"
"Back\\\\slash\\/Naam" = "Other"
[mail.folders.merge]
"Archief/2024" = "Archive"
[mail.folders.special_use]
sentitems = "Sent Items"
"""


def test_from_toml_reads_the_documented_table():
    rules = FolderRules.from_toml(tomllib.loads(EXAMPLE)["mail"]["folders"])
    assert rules == FolderRules(
        rename={("Projecten", "2026"): ("Projects", "2026"), ("Klanten/Leveranciers",): ("Relaties",), ("Back\\slash/Naam",): ("Other",)},
        merge={("Archief", "2024"): ("Archive",)},
        exclude=frozenset({("Postvak IN", "Nieuwsbrieven")}),
        special_use_names={"sentitems": "Sent Items"},
    )
    assert FolderRules.from_toml(None) == FolderRules.from_toml({}) == FolderRules()


@pytest.mark.parametrize(
    ("table", "named", "hint"),
    [
        ({"exlude": []}, "mail.folders.exlude", "exclude, rename, merge, special_use"),
        ({"exclude": "Projecten"}, "mail.folders.exclude", "exclude = ["),
        ({"exclude": [3]}, "mail.folders.exclude entry", "Projecten/2026"),
        ({"exclude": ["Projecten//2026"]}, "mail.folders.exclude entry 'Projecten//2026'", "single '/'"),
        ({"rename": ["a", "b"]}, "mail.folders.rename", "[mail.folders.rename]"),
        ({"rename": {"Projecten": 2026}}, "[mail.folders.rename] target of 'Projecten'", "Projecten/2026"),
        ({"rename": {"/Projecten": "P"}}, "[mail.folders.rename] source '/Projecten'", "single '/'"),
        ({"merge": {"Archief/2024": "Archive/"}}, "[mail.folders.merge] target of 'Archief/2024'", "single '/'"),
        ({"merge": {"Archief/2024": "Arch\nive"}}, "[mail.folders.merge] target of 'Archief/2024'", "without it"),
        ({"special_use": {"inbox": "Inbox"}}, "mail.folders.special_use.inbox", "remove the line"),
        ({"special_use": {"outbox": "Outbox"}}, "mail.folders.special_use.outbox", "sentitems"),
        ({"special_use": {"sentitems": "Mail/Sent"}}, "mail.folders.special_use.sentitems", "\\/"),
        ({"special_use": "Sent"}, "mail.folders.special_use", "sentitems ="),
        ({"rename": {"A": "B", "B": "A"}}, '[mail.folders.rename] "A"', "remove the rule or fix its path"),
    ],
)
def test_from_toml_errors_name_the_key_and_the_fix(table, named, hint):
    with pytest.raises(ConfigError) as caught:
        FolderRules.from_toml(table)
    assert named in str(caught.value)
    assert hint in caught.value.hint


def test_from_toml_refuses_a_non_table():
    with pytest.raises(ConfigError, match=r"\[mail.folders\] must be a table"):
        FolderRules.from_toml(["exclude"])  # type: ignore[arg-type]


names = st.text(min_size=1).filter(lambda s: s not in (".", ".."))


@given(st.lists(names, min_size=1, max_size=4))
def test_paths_round_trip_through_their_configuration_spelling(path):
    assert parse_path(format_path(tuple(path))) == tuple(path)


# ------------------------------------------------------------------------ modified UTF-7


@pytest.mark.parametrize(
    ("name", "encoded"),
    [
        ("Überleg & Co", "&ANw-berleg &- Co"),
        ("日本語", "&ZeVnLIqe-"),
        ("Postvak IN", "Postvak IN"),
        ("&", "&-"),
        ("", ""),
        ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
        ("Verwijderde items 🗑", "Verwijderde items &2D3d0Q-"),
        ("tab\there", "tab&AAk-here"),
    ],
)
def test_modified_utf7_vectors(name, encoded):
    assert imap_utf7.encode(name) == encoded
    assert imap_utf7.decode(encoded) == name


@given(st.text())
def test_modified_utf7_round_trips_and_stays_printable_ascii(name):
    encoded = imap_utf7.encode(name)
    assert all(" " <= char <= "~" for char in encoded)
    assert imap_utf7.decode(encoded) == name


@pytest.mark.parametrize("bad", ["&ZeVn", "&Ze!-", "Ü", "&A-"])
def test_malformed_modified_utf7_is_refused(bad):
    with pytest.raises(ValueError):
        imap_utf7.decode(bad)
