"""Names a files target accepts, and the rule that makes any OneDrive name acceptable.

The rule (documented in the README, listed per file in the report):
1. Unicode is normalised to NFC, as Nextcloud stores it; this alone never renames a file visibly.
2. Control characters and every forbidden character become "_".
3. A forbidden extension (".part") has its dot replaced: "download.part" -> "download_part".
4. A forbidden whole name (".htaccess") or basename ("CON" of "con.txt") gets a "_" prefix.
5. A trailing space or dot, where the target forbids them, becomes "_".
6. A name longer than the target allows is cut, keeping its extension.
Whenever steps 2-6 changed anything, "~" and six hex digits of the original name's SHA-256 are
added before the extension. Two different originals therefore never share a legal name, and no
legal original can be taken by a legalised one unless it already ends in that very marker.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

MAX_NAME_BYTES = 250  # Nextcloud refuses longer names ("Filename is too long")
MARK_LENGTH = 7  # "~" + six hex digits


@dataclass(frozen=True)
class NameRules:
    forbidden_names: frozenset[str] = frozenset()  # compared case-insensitively
    forbidden_basenames: frozenset[str] = frozenset()  # the part before the first dot
    forbidden_characters: frozenset[str] = frozenset("/")
    forbidden_extensions: tuple[str, ...] = ()  # lower case, e.g. ".part"; " " and "." forbid trailing ones
    max_name_bytes: int = MAX_NAME_BYTES

    @classmethod
    def nextcloud_defaults(cls) -> NameRules:
        """What Nextcloud refuses without any admin setting (FilenameValidator's defaults), plus
        the backslash older releases refuse, for servers that do not publish the lists."""
        return cls(
            forbidden_names=frozenset({".htaccess"}),
            forbidden_characters=frozenset("/\\"),
            forbidden_extensions=(".part", ".filepart"),
        )

    @classmethod
    def from_capabilities(cls, files: Mapping[str, Any]) -> NameRules:
        """Nextcloud 30+ publishes its lists under capabilities.files; missing lists keep the defaults."""
        base = cls.nextcloud_defaults()

        def listed(key: str, default: Iterable[str]) -> list[str]:
            value = files.get(key)
            return [str(v) for v in value] if isinstance(value, list) else list(default)

        return cls(
            forbidden_names=frozenset(n.lower() for n in listed("forbidden_filenames", base.forbidden_names)),
            forbidden_basenames=frozenset(n.lower() for n in listed("forbidden_filename_basenames", base.forbidden_basenames)),
            # "/" separates path segments on every WebDAV server, whatever the list says.
            forbidden_characters=frozenset("".join(listed("forbidden_filename_characters", base.forbidden_characters))) | {"/"},
            forbidden_extensions=tuple(e.lower() for e in listed("forbidden_filename_extensions", base.forbidden_extensions)),
        )


@dataclass(frozen=True)
class LegalName:
    name: str
    reasons: tuple[str, ...] = ()  # empty when the name is kept (up to NFC)


def _marker(original: str) -> str:
    return "~" + hashlib.sha256(original.encode("utf-8", "surrogatepass")).hexdigest()[:6]


def _split_extension(name: str) -> tuple[str, str]:
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem.strip("._") or " " in ext or len(ext) > 16:  # ".htaccess" is all name
        return name, ""
    return stem, "." + ext


def _cut(text: str, max_bytes: int) -> str:
    data = text.encode("utf-8")[:max(max_bytes, 0)]
    return data.decode("utf-8", "ignore")


def legal_name(original: str, rules: NameRules) -> LegalName:
    name = unicodedata.normalize("NFC", original)
    reasons: list[str] = []
    if name in ("", ".", ".."):
        reasons.append("reserved name")
        name = name.replace(".", "_") or "_"
    cleaned = "".join("_" if (ord(ch) < 32 or ord(ch) == 127 or ch in rules.forbidden_characters) else ch for ch in name)
    if cleaned != name:
        reasons.append("forbidden character")
        name = cleaned
    for ext in rules.forbidden_extensions:
        if ext.strip(" .") and name.lower().endswith(ext):
            name = name[: -len(ext)] + "_" + name[len(name) - len(ext) + 1:]
            reasons.append(f"forbidden extension {ext}")
            break
    if name.lower() in rules.forbidden_names or name.split(".", 1)[0].lower() in rules.forbidden_basenames:
        name = "_" + name
        reasons.append("reserved name")
    trailing = "".join(e for e in rules.forbidden_extensions if e in (" ", "."))
    if trailing and name[-1:] in trailing:
        stripped = name.rstrip(trailing)
        name = stripped + "_" * (len(name) - len(stripped))
        reasons.append("trailing space or dot")
    if len(name.encode("utf-8")) > rules.max_name_bytes:
        reasons.append("too long")
    if not reasons:
        return LegalName(name)
    stem, ext = _split_extension(name)
    mark = _marker(original)
    room = rules.max_name_bytes - len(ext.encode("utf-8")) - len(mark)
    if room < 1:  # an absurd extension: keep nothing of it
        stem, ext, room = name, "", rules.max_name_bytes - len(mark)
    return LegalName(_cut(stem, room) + mark + ext, tuple(reasons))


def legal_path(segments: Iterable[str], rules: NameRules) -> tuple[tuple[str, ...], list[tuple[str, LegalName]]]:
    """Each segment made legal on its own, so a folder's legal name is the same for all its files;
    returns the legal path and the segments that were renamed."""
    legal: list[str] = []
    renamed: list[tuple[str, LegalName]] = []
    for segment in segments:
        result = legal_name(segment, rules)
        legal.append(result.name)
        if result.reasons:
            renamed.append((segment, result))
    return tuple(legal), renamed
