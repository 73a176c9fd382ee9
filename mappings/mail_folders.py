"""Where each source mail folder lands on the IMAP server.

A folder's target path is decided by the first of these steps that applies, always in this order,
looking only at the folder's *source* path (its display names from the top of the mailbox):

1. **exclude** – the folder is an excluded path or lies below one: it is not migrated (None).
2. **rename** – the longest rename source that is the folder's path or a prefix of it: the folder
   lands at the rule's target, with the rest of its path kept below it.
3. **merge** – the same prefix logic over the merge rules. Merging differs from renaming only in
   that several folders may knowingly land in one target.
4. **role** – a well-known folder lands at its special-use name (INBOX, Sent, Drafts, Trash, Junk,
   Archive, or the `special_use` override) whatever the mailbox language, and its subfolders below
   that name: ("Postvak IN", "Nieuwsbrieven") -> ("INBOX", "Nieuwsbrieven"). The Outbox and its
   subfolders are not migrated (mail waiting there was never sent); an explicit rename or merge
   rule for it wins, as those come first.
5. otherwise the source path itself.

Rules apply once, to the source path: a rule's target is never fed to another rule. Rules that
would go round in a circle if it were (A -> B with B -> A, or A -> A/Sub) are refused as a mistake;
a chain that ends (A -> B, B -> C: A's mail in B, B's in C) is allowed. A first name
"inbox" in any case becomes "INBOX", because IMAP treats that name case-insensitively and a folder
spelled "Inbox" would silently be the inbox.

Paths in the configuration are written with "/" between names. A name that itself contains "/" is
written with a backslash before it, and a backslash in a name is doubled. TOML gives backslashes a
meaning of its own in "..." strings, so write such paths as '...' literal strings:

    [mail.folders]
    exclude = ["Postvak IN/Nieuwsbrieven"]
    [mail.folders.rename]
    "Projecten/2026" = "Projects/2026"
    'Klanten\\/Leveranciers' = "Relaties"     # the folder "Klanten/Leveranciers"
    [mail.folders.merge]
    "Archief/2024" = "Archive"
    [mail.folders.special_use]
    sentitems = "Sent Items"

Names are matched exactly, case included. Target names stay Unicode here; the IMAP sink joins them
with the server's separator (escaping a "/" inside a name) and encodes them as modified UTF-7.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from migrator.errors import ConfigError
from migrator.model import Container

FolderPath = tuple[str, ...]

SPECIAL_USE: dict[str, tuple[str, str | None]] = {
    "inbox": ("INBOX", None),
    "sentitems": ("Sent", "\\Sent"),
    "drafts": ("Drafts", "\\Drafts"),
    "deleteditems": ("Trash", "\\Trash"),
    "junkemail": ("Junk", "\\Junk"),
    "archive": ("Archive", "\\Archive"),
}
NOT_MIGRATED_ROLES = frozenset({"outbox"})
SECTION = "mail.folders"
_KEYS = ("exclude", "rename", "merge", "special_use")
_FIX_PATH = "remove the rule or fix its path"
_FIX_COLLISION = "add a [mail.folders.rename] rule for one of them"


@dataclass(frozen=True)
class FolderRules:
    """The folder rules of the configuration, with paths already split into names."""

    rename: dict[FolderPath, FolderPath] = field(default_factory=dict)
    merge: dict[FolderPath, FolderPath] = field(default_factory=dict)
    exclude: frozenset[FolderPath] = frozenset()
    special_use_names: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_toml(cls, table: Mapping[str, Any] | None) -> FolderRules:
        """The rules from the `[mail.folders]` table (pass the table itself, or None when absent)."""
        if table is None:
            return cls()
        if not isinstance(table, Mapping):
            raise ConfigError(f"[{SECTION}] must be a table", hint=f"write it as a [{SECTION}] section")
        for key in table:
            if key not in _KEYS:
                raise ConfigError(f"unknown key {SECTION}.{key}", hint=f"the keys of [{SECTION}] are {', '.join(_KEYS)}")
        rules = cls(
            rename=_path_table(table.get("rename", {}), "rename"),
            merge=_path_table(table.get("merge", {}), "merge"),
            exclude=_exclude_list(table.get("exclude", [])),
            special_use_names=_special_use_table(table.get("special_use", {})),
        )
        check_rules(rules)
        return rules


# ------------------------------------------------------------------------------- path syntax


def parse_path(text: str) -> FolderPath:
    """'A/B\\/C' -> ("A", "B/C"). Raises ValueError with what is wrong, for the caller to put in context."""
    names: list[str] = []
    current: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        following = text[index + 1] if index + 1 < len(text) else ""
        if char == "\\" and following in ("/", "\\"):
            current.append(following)
            index += 2
            continue
        if char == "/":
            names.append("".join(current))
            current = []
        else:
            current.append(char)
        index += 1
    names.append("".join(current))
    if any(name == "" for name in names):
        raise ValueError("has an empty folder name (a leading, trailing or doubled '/')")
    return tuple(names)


def format_path(path: FolderPath) -> str:
    """The configuration spelling of a path, so messages show what the user would write."""
    return "/".join(name.replace("\\", "\\\\").replace("/", "\\/") for name in path)


def _quote(path: FolderPath) -> str:
    return '"' + format_path(path) + '"'


def _parse_config_path(text: Any, where: str) -> FolderPath:
    if not isinstance(text, str):
        raise ConfigError(f"{where} must be a string folder path, got {text!r}", hint='e.g. "Projecten/2026"')
    try:
        path = parse_path(text)
    except ValueError as exc:
        raise ConfigError(f"{where} {text!r} {exc}", hint="write the names separated by single '/', e.g. \"Projecten/2026\"") from None
    if problem := _path_problem(path):
        raise ConfigError(f"{where} {text!r} contains {problem}", hint="choose a folder name without it")
    return path


def _path_table(value: Any, name: str) -> dict[FolderPath, FolderPath]:
    where = f"[{SECTION}.{name}]"
    if not isinstance(value, Mapping):
        raise ConfigError(f"{SECTION}.{name} must be a table of source path = target path", hint=f'write it as a {where} section with lines like "Old/Name" = "New/Name"')
    rules: dict[FolderPath, FolderPath] = {}
    for source_text, target_text in value.items():
        source = _parse_config_path(source_text, f"{where} source")
        target = _parse_config_path(target_text, f"{where} target of {source_text!r}")
        if source in rules:
            raise ConfigError(f"{where} names {_quote(source)} twice", hint="keep one of the two lines")
        rules[source] = target
    return rules


def _exclude_list(value: Any) -> frozenset[FolderPath]:
    where = f"{SECTION}.exclude"
    if not isinstance(value, list):
        raise ConfigError(f"{where} must be a list of folder paths, got {value!r}", hint='e.g. exclude = ["Postvak IN/Nieuwsbrieven"]')
    return frozenset(_parse_config_path(entry, f"{where} entry") for entry in value)


def _special_use_table(value: Any) -> dict[str, str]:
    where = f"{SECTION}.special_use"
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a table of role = folder name", hint=f'write it as a [{where}] section with lines like sentitems = "Sent Items"')
    renamable = [role for role in SPECIAL_USE if role != "inbox"]
    names: dict[str, str] = {}
    for role, text in value.items():
        if role == "inbox":
            raise ConfigError(f"{where}.inbox cannot be set: IMAP always calls the inbox INBOX", hint="remove the line")
        if role not in SPECIAL_USE:
            raise ConfigError(f"unknown key {where}.{role}", hint=f"the roles that can be named are {', '.join(renamable)}")
        path = _parse_config_path(text, f"{where}.{role}")
        if len(path) != 1:
            raise ConfigError(f"{where}.{role} {text!r} must be one top-level folder name", hint="write a '/' inside the name as '\\/' in a '...' literal string")
        names[role] = path[0]
    return names


# ------------------------------------------------------------------------- resolving a folder


def _is_under(path: FolderPath, prefix: FolderPath) -> bool:
    return path[: len(prefix)] == prefix


def _longest_prefix(path: FolderPath, table: Mapping[FolderPath, Any]) -> FolderPath | None:
    matches = [prefix for prefix in table if _is_under(path, prefix)]
    return max(matches, key=len) if matches else None


def _canonical(path: FolderPath) -> FolderPath:
    if path and path[0].upper() == "INBOX":
        return ("INBOX", *path[1:])
    return path


def source_path(container: Container) -> FolderPath:
    return container.path or (container.name,)


def well_known_paths(containers: Iterable[Container]) -> dict[FolderPath, str]:
    """Source path -> role of one mailbox's well-known folders, which its subfolders follow."""
    known = set(SPECIAL_USE) | NOT_MIGRATED_ROLES
    return {source_path(c): c.role for c in containers if c.role in known}


def special_use_name(role: str, rules: FolderRules) -> str | None:
    if role not in SPECIAL_USE:
        return None
    return rules.special_use_names.get(role) or SPECIAL_USE[role][0]


def _resolve(path: FolderPath, rules: FolderRules, well_known: Mapping[FolderPath, str]) -> tuple[FolderPath | None, str]:
    """The target and the step that chose it (exclude, rename, merge, role, source)."""
    if any(_is_under(path, excluded) for excluded in rules.exclude):
        return None, "exclude"
    for step, table in (("rename", rules.rename), ("merge", rules.merge)):
        prefix = _longest_prefix(path, table)
        if prefix is not None:
            return _canonical(table[prefix] + path[len(prefix) :]), step
    prefix = _longest_prefix(path, well_known)
    if prefix is not None:
        role = well_known[prefix]
        if role in NOT_MIGRATED_ROLES:
            return None, "role"
        name = special_use_name(role, rules)
        if name is not None:
            return _canonical((name, *path[len(prefix) :])), "role"
    return _canonical(path), "source"


def target_path(container: Container, rules: FolderRules, well_known: Mapping[FolderPath, str] | None = None) -> FolderPath | None:
    """The folder's target path, or None when it is not migrated.

    A subfolder of a well-known folder has no role of its own, so it follows its parent only when
    `well_known` (from `well_known_paths` over the same mailbox) is given; without it only the
    container's own role counts. `check_one_to_one` always uses the whole mailbox."""
    path = source_path(container)
    if well_known is None:
        well_known = well_known_paths([container])
    return _resolve(path, rules, well_known)[0]


def special_use_flag(container: Container) -> str | None:
    """The RFC 6154 attribute for CREATE ... (USE (...)): a well-known folder's own, never its children's."""
    return SPECIAL_USE.get(container.role, ("", None))[1]


# ---------------------------------------------------------------------------------- checking


def _path_problem(path: FolderPath, separator: str | None = None) -> str | None:
    """Why a name cannot be created on an IMAP server, if it cannot."""
    if not path:
        return "no folder name at all"
    for name in path:
        if name == "":
            return "an empty folder name"
        if name in (".", ".."):
            return f"the folder name {name!r}, which IMAP servers refuse"
        if any(ord(char) < 0x20 or ord(char) == 0x7F for char in name):
            return f"a control character in the folder name {name!r}"
        if separator and separator in name:
            return f"the server's hierarchy separator {separator!r} in the folder name {name!r}"
    return None


def _rules_in_order(rules: FolderRules) -> list[tuple[str, FolderPath, FolderPath | None]]:
    """(table, source, target) for every rule, in precedence order."""
    out: list[tuple[str, FolderPath, FolderPath | None]] = [("exclude", path, None) for path in sorted(rules.exclude)]
    out += [("rename", source, target) for source, target in rules.rename.items()]
    out += [("merge", source, target) for source, target in rules.merge.items()]
    return out


def _rule_name(table: str, source: FolderPath) -> str:
    if table == "exclude":
        return f"{SECTION}.exclude entry {_quote(source)}"
    return f"[{SECTION}.{table}] {_quote(source)}"


def _check_shadowed(rules: FolderRules) -> None:
    """A rule below the source of an earlier step's rule never applies: refuse it instead of ignoring it."""
    earlier: dict[str, list[FolderPath]] = {"exclude": [], "rename": list(rules.exclude)}
    earlier["merge"] = earlier["rename"] + list(rules.rename)
    for table, source, _ in _rules_in_order(rules):
        for shadow in earlier[table]:
            if _is_under(source, shadow):
                step = "exclude" if shadow in rules.exclude else "rename"
                raise ConfigError(
                    f"{_rule_name(table, source)} never applies: {_rule_name(step, shadow)} covers that folder and comes first",
                    hint=_FIX_PATH,
                )


def _rule_step(path: FolderPath, rules: FolderRules) -> tuple[tuple[str, FolderPath], FolderPath] | None:
    """The rule that would place `path` and where, by the same precedence as `_resolve`."""
    if any(_is_under(path, excluded) for excluded in rules.exclude):
        return None
    for table_name, table in (("rename", rules.rename), ("merge", rules.merge)):
        prefix = _longest_prefix(path, table)
        if prefix is not None:
            return (table_name, prefix), table[prefix] + path[len(prefix) :]
    return None


def _find_loop(start: FolderPath, rules: FolderRules) -> list[tuple[str, FolderPath]] | None:
    """Feeds a path through the rules again and again, which they never do, to see whether a chain
    comes back to a rule it used: such a chain swaps or cycles folders, almost always a typo."""
    path = start
    used: list[tuple[str, FolderPath]] = []
    for _ in range(len(rules.rename) + len(rules.merge) + 1):
        step = _rule_step(path, rules)
        if step is None or step[1] == path:
            return None
        rule, path = step
        if rule in used:
            return [*used[used.index(rule) :], rule]
        used.append(rule)
    return None


def _check_loops(rules: FolderRules, paths: Iterable[FolderPath] = ()) -> None:
    starts = [*rules.rename, *rules.rename.values(), *rules.merge, *rules.merge.values(), *paths]
    for start in starts:
        if loop := _find_loop(start, rules):
            names = " -> ".join(_rule_name(table, source) for table, source in loop)
            raise ConfigError(f"mail folder rules form a loop: {names}", hint=_FIX_PATH)


def check_rules(rules: FolderRules, separator: str | None = None) -> None:
    """What can be checked without a mailbox: rule targets, shadowed rules, loops."""
    for table, source, target in _rules_in_order(rules):
        if target is not None and (problem := _path_problem(target, separator)):
            raise ConfigError(f"the target of {_rule_name(table, source)} contains {problem}", hint="choose a folder name without it")
    for role, name in rules.special_use_names.items():
        if problem := _path_problem((name,), separator):
            raise ConfigError(f"{SECTION}.special_use.{role} contains {problem}", hint="choose a folder name without it")
    _check_shadowed(rules)
    _check_loops(rules)


def missing_sources(containers: Iterable[Container], rules: FolderRules) -> list[str]:
    """The rules whose source path is no folder among `containers`, described for a message.
    Pass every mailbox's folders at once to find the rules that apply to nobody."""
    existing = {source_path(c) for c in containers}
    return [_rule_name(table, source) for table, source, _ in _rules_in_order(rules) if source not in existing]


def _describe(container: Container) -> str:
    return f"{_quote(source_path(container))} (id {container.source_id})"


def _collision(target: FolderPath, plain: list[Container]) -> ConfigError:
    first, second = plain[0], plain[1]
    same_name = source_path(first) == source_path(second)
    names = [(_describe(c) if same_name else _quote(source_path(c))) for c in (first, second)]
    more = f" (and {len(plain) - 2} more)" if len(plain) > 2 else ""
    return ConfigError(
        f"mail folders {names[0]} and {names[1]}{more} would both land in {_quote(target)}",
        hint=f"{_FIX_COLLISION}, or a [{SECTION}.merge] rule for one of them if they belong together",
    )


def check_one_to_one(
    containers: list[Container], rules: FolderRules, *, require_sources: bool = True, separator: str | None = None,
) -> dict[str, FolderPath | None]:
    """Container source_id -> target path (None: not migrated) for one mailbox, refusing rules that
    would mix folders by accident.

    At one target path at most one folder may arrive by anything but a merge rule: merge rules are
    how a user says folders belong together. `require_sources=False` skips the check that every
    rule names an existing folder, for callers that check it across all mailboxes with
    `missing_sources`. `separator` is a hierarchy separator the sink cannot escape inside a name."""
    check_rules(rules, separator)
    _check_loops(rules, (source_path(c) for c in containers))
    if require_sources and (missing := missing_sources(containers, rules)):
        raise ConfigError(f"{missing[0]} names a folder this mailbox does not have", hint=_FIX_PATH)
    well_known = well_known_paths(containers)
    result: dict[str, FolderPath | None] = {}
    plain_arrivals: dict[FolderPath, list[Container]] = {}
    for container in containers:
        target, step = _resolve(source_path(container), rules, well_known)
        result[container.source_id] = target
        if target is None:
            continue
        if problem := _path_problem(target, separator):
            raise ConfigError(f"mail folder {_quote(source_path(container))} would land in {_quote(target)}, which contains {problem}", hint=f"add a [{SECTION}.rename] rule for it")
        if step != "merge":
            plain_arrivals.setdefault(target, []).append(container)
    for target in sorted(plain_arrivals):
        if len(plain_arrivals[target]) > 1:
            raise _collision(target, plain_arrivals[target])
    return result
