"""A sink that writes mail as a Maildir++ tree: an offline export, or a tree Dovecot serves as is
or imports (`doveadm import` / `dsync`).

Layout, as Dovecot's default `maildir:` (LAYOUT=maildir++) location reads it back:

    <root>/<owner>/                        the owner's Maildir, and its INBOX (cur/ new/ tmp/)
    <root>/<owner>/.Sent/                  a folder: cur/ new/ tmp/ and an empty `maildirfolder`
    <root>/<owner>/.INBOX.Nieuwsbrieven/   a child of INBOX keeps "INBOX" as its first level
    <root>/<owner>/.Projecten.2026.&ANw-berleg &- Co/
    <root>/<owner>/subscriptions           Dovecot's "V\\t2" format: one folder a line, levels split by tabs
    <root>/<owner>/<folder>/dovecot-keywords   "<index> <keyword>" lines; index 0 is letter "a"

Dovecot stores INBOX's children as ".INBOX.<child>" (checked with doveadm 2.3: creating
"INBOX/Nieuwsbrieven" makes that directory), so ("INBOX", "Nieuwsbrieven") goes there and not to
".Nieuwsbrieven", which Dovecot would show as a top-level folder.

Folder names: each name is escaped the way Dovecot's `listescape` plugin stores names, then written
in IMAP modified UTF-7 as Dovecot does. Maildir++ uses "." between levels and a directory name
cannot hold "/", so "." becomes "\\2e", "/" becomes "\\2f", "\\" becomes "\\5c" and a leading "~"
becomes "\\7e". With `mail_plugins = listescape` Dovecot shows the original names; without it the
folder still opens, named with the escape visible ("a\\2eb"). Encoding "." as "&AC4-" instead does
not work: modified UTF-7 may not shift printable ASCII, so Dovecot lists such a folder by its raw
name and then cannot open it.

A message is one file in cur/: `<epoch>.M<usec>P<pid>Q<n>.<host>,S=<size>,W=<vsize>:2,<flags>`.
S= and W= (size with bare LFs counted as CRLF) let Dovecot answer sizes without reading the file.
The flags are Maildir's letters (D F R S T) followed by the folder's keyword letters, sorted. The
file's mtime is the message's INTERNALDATE, which is where Dovecot reads it from.

Finding a message again relies on the `X-Migrator-Source-Id` header the mail mapping puts in front
of every message: each folder's index of those headers is built from disk on first use (reading
only header blocks) and kept up to date in memory. A message stored without that header is found
only by the sink instance that stored it.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import os
import re
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from connectors.directory import writable_root
from migrator.errors import ItemError
from migrator.model import Capabilities, DestRef, Target

SOURCE_HEADER = b"x-migrator-source-id"
INBOX = "INBOX"
TMP_MAX_AGE = 36 * 3600  # the Maildir rule: a tmp/ file untouched this long is a dead delivery
KEYWORDS_FILE = "dovecot-keywords"
SUBSCRIPTIONS_FILE = "subscriptions"
MAX_KEYWORDS = 26  # Dovecot maps keywords to the letters a..z only
_HEADER_LIMIT = 256 * 1024  # a header block larger than this is not a message we wrote
_NAME_MAX = 255  # bytes in one directory name; Maildir++ puts the whole folder path in one

_SYSTEM_FLAGS = {
    "\\draft": "D",
    "\\flagged": "F",
    "\\answered": "R",
    "\\replied": "R",
    "\\seen": "S",
    "\\deleted": "T",
    "\\trashed": "T",
}
_ESCAPED = {"\\": "\\5c", ".": "\\2e", "/": "\\2f"}
_UNIQUE_AGE = re.compile(r"^(\d+)\.M(\d+)P\d+(?:Q(\d+))?")
_ESCAPE_SEQUENCE = re.compile(r"\\([0-9a-fA-F]{2})")
_MODE_DIR = 0o700  # mail is private: the same modes Dovecot creates
_MODE_FILE = 0o600
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# ------------------------------------------------------------------------------- folder names


def encode_utf7(name: str) -> str:
    """IMAP modified UTF-7 (RFC 3501 5.1.3): the on-disk spelling Dovecot uses for Unicode names."""
    out: list[str] = []
    pending: list[str] = []

    def shift() -> None:
        if pending:
            raw = "".join(pending).encode("utf-16-be", "surrogatepass")
            out.append("&" + base64.b64encode(raw).decode("ascii").rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for char in name:
        if "\x20" <= char <= "\x7e":
            shift()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    shift()
    return "".join(out)


def decode_utf7(text: str) -> str:
    """The inverse of `encode_utf7`, for reading a tree back."""
    out: list[str] = []
    index = 0
    while index < len(text):
        if text[index] != "&":
            out.append(text[index])
            index += 1
            continue
        end = text.index("-", index + 1)
        run = text[index + 1 : end]
        if run:
            padded = run.replace(",", "/") + "=" * (-len(run) % 4)
            out.append(base64.b64decode(padded).decode("utf-16-be", "surrogatepass"))
        else:
            out.append("&")
        index = end + 1
    return "".join(out)


def encode_name(name: str) -> str:
    """One folder name as one level of a Maildir++ directory name (see the module docstring)."""
    if not name:
        raise ItemError("an empty folder name cannot be stored in a Maildir")
    if "\x00" in name:
        raise ItemError(f"the folder name {name!r} holds a NUL character")
    escaped = "".join(_ESCAPED.get(char, char) for char in name)
    if escaped.startswith("~"):
        escaped = "\\7e" + escaped[1:]  # Dovecot refuses a storage name starting with "~"
    return encode_utf7(escaped)


def decode_name(level: str) -> str:
    return _ESCAPE_SEQUENCE.sub(lambda m: chr(int(m.group(1), 16)), decode_utf7(level))


def _is_inbox(path: tuple[str, ...]) -> bool:
    return bool(path) and path[0].upper() == INBOX


def folder_dirname(path: tuple[str, ...]) -> str:
    """The directory of a folder inside the owner's Maildir: "" for INBOX, ".Sent", ".INBOX.Sub"."""
    if not path:
        raise ItemError("a mail folder needs at least one name")
    if _is_inbox(path):
        if len(path) == 1:
            return ""
        # IMAP names INBOX case-insensitively, so any spelling lands in the one INBOX.
        levels = [INBOX, *(encode_name(name) for name in path[1:])]
    else:
        levels = [encode_name(name) for name in path]
    dirname = "." + ".".join(levels)
    if len(os.fsencode(dirname)) > _NAME_MAX:
        raise ItemError(f"the folder path {'/'.join(path)!r} is longer than a Maildir++ directory name can be ({_NAME_MAX} bytes)")
    return dirname


def folder_path(dirname: str) -> tuple[str, ...]:
    """The folder names behind a Maildir++ directory name: the inverse of `folder_dirname`."""
    if dirname == "":
        return (INBOX,)
    levels = dirname[1:].split(".")
    if levels[0] == INBOX:
        return (INBOX, *(decode_name(level) for level in levels[1:]))
    return tuple(decode_name(level) for level in levels)


def subscription_entry(path: tuple[str, ...]) -> str:
    """A folder as Dovecot's V2 subscriptions file names it: the levels of its directory, tab-separated."""
    dirname = folder_dirname(path)
    return INBOX if dirname == "" else dirname[1:].replace(".", "\t")


# ---------------------------------------------------------------------------------- file names


def _host_part() -> str:
    # "/" and ":" would break the path or the info part, "," the S=/W= fields: Maildir's escapes.
    host = socket.gethostname() or "localhost"
    return host.replace("/", "\\057").replace(":", "\\072").replace(",", "\\054")


def unique_part(filename: str) -> str:
    """The part of a Maildir file name that stays when flags or sizes are added to it."""
    return re.split(r"[,:]", filename, maxsplit=1)[0]


def _age(unique: str) -> tuple[int, int, int]:
    """Delivery order from a unique name, so the newest of two copies of one message wins."""
    match = _UNIQUE_AGE.match(unique)
    if match is None:
        return (0, 0, 0)
    return (int(match.group(1)), int(match.group(2)), int(match.group(3) or 0))


def info_flags(filename: str) -> str:
    """The flag letters of a file name ("" when it has no ":2," info)."""
    _, sep, info = filename.partition(":2,")
    return info if sep else ""


def _mtime_ns(value: Any) -> int | None:
    """INTERNALDATE from the mapping's ISO 8601 text (or a datetime); a time without zone is UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ItemError(f"internal_date {value!r} is not an ISO 8601 time") from None
    if not isinstance(value, datetime):
        raise ItemError(f"internal_date {value!r} is not a time")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // timedelta(microseconds=1) * 1000


# ------------------------------------------------------------------------------ header parsing


def header_value(head: bytes, name: bytes) -> str | None:
    """A header field's value from the start of a message, with folded lines joined."""
    end = len(head)
    for blank in (b"\r\n\r\n", b"\n\n"):
        at = head.find(blank)
        if at >= 0:
            end = min(end, at)
    if head.startswith((b"\r\n", b"\n")):
        return None  # no header block at all
    unfolded = re.sub(rb"\r?\n[ \t]+", b" ", head[:end])
    for line in re.split(rb"\r?\n", unfolded):
        field_name, colon, value = line.partition(b":")
        if colon and field_name.strip().lower() == name:
            return value.strip().decode("utf-8", "replace")
    return None


def read_source_id(file: Path) -> str | None:
    """The X-Migrator-Source-Id of a stored message, reading no further than its header block."""
    head = b""
    with file.open("rb") as handle:
        while len(head) < _HEADER_LIMIT:
            block = handle.read(8192)
            if not block:
                break
            head += block
            if SOURCE_HEADER in head.lower() and head.find(b"\n", head.lower().find(SOURCE_HEADER)) >= 0:
                break  # the field is complete unless folded, and the mapping never folds it
            if b"\n\n" in head or b"\r\n\r\n" in head:
                break
    return header_value(head, SOURCE_HEADER)


def file_digest(file: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with file.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


class _LineCounter:
    """Counts bare LFs across chunks: Dovecot's virtual size counts each as CRLF."""

    def __init__(self) -> None:
        self.bare_lf = 0
        self._last_cr = False

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        crlf = chunk.count(b"\r\n") + (1 if self._last_cr and chunk[:1] == b"\n" else 0)
        self.bare_lf += chunk.count(b"\n") - crlf
        self._last_cr = chunk[-1:] == b"\r"


# ------------------------------------------------------------------------------ folder state


@dataclass
class _Folder:
    """One Maildir folder as this run knows it: its messages by unique name, and keys to them."""

    dir: Path
    rel: str  # the folder directory relative to the sink root
    files: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # unique -> (sub/name, key)
    keys: dict[str, list[str]] = field(default_factory=dict)  # key -> uniques, oldest first
    scanned: bool = False
    keywords: list[str | None] | None = None  # index = letter; None until dovecot-keywords is read

    def add(self, unique: str, relname: str, key: str | None) -> None:
        self.files[unique] = (relname, key)
        if key is not None:
            uniques = self.keys.setdefault(key, [])
            if unique not in uniques:
                uniques.append(unique)
                uniques.sort(key=_age)

    def drop(self, unique: str) -> None:
        relname_key = self.files.pop(unique, None)
        if relname_key is None or relname_key[1] is None:
            return
        uniques = self.keys.get(relname_key[1], [])
        if unique in uniques:
            uniques.remove(unique)
        if not uniques:
            self.keys.pop(relname_key[1], None)


def _message_names(folder: Path) -> Iterable[str]:
    """'cur/<name>' and 'new/<name>' of every message file; dot files are not messages."""
    for sub in ("cur", "new"):
        try:
            names = os.listdir(folder / sub)
        except FileNotFoundError:
            continue
        for name in names:
            if not name.startswith("."):
                yield f"{sub}/{name}"


def _safe_owner(owner: str) -> str:
    if not owner or owner.startswith(".") or "/" in owner or "\\" in owner or "\x00" in owner:
        raise ItemError(f"{owner!r} cannot name a Maildir directory")
    return owner


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomically(file: Path, text: str) -> None:
    partial = file.with_name(f".{file.name}.tmp{os.getpid()}")
    try:
        with open(partial, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(partial, _MODE_FILE)
        os.replace(partial, file)
    finally:
        partial.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------- sink


class MaildirSink:
    """Mail into `<root>/<owner>/` as Maildir++ (see the module docstring for the layout).

    `find` also brings a found message's flags and date up to those of the target: they are not
    part of the message's content, so a rerun after a flag change at the source would otherwise
    see identical content and leave the old flags.
    """

    caps = Capabilities(hashes=("sha256",), mtime_precision=1.0, cheap_find=True, listing=True, delete=True)

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._folders: dict[str, _Folder] = {}
        self._counter = itertools.count(1)
        self._host = _host_part()
        self.dropped_keywords: dict[str, set[str]] = {}  # folder rel -> keywords that did not fit a..z

    # ------------------------------------------------------------------ Sink protocol

    async def probe(self, owner: str) -> str:
        return writable_root(self.root)

    async def ensure_container(self, owner: str, path: tuple[str, ...]) -> str:
        try:
            self._create(owner, (INBOX,))  # the owner's root must be a Maildir for Dovecot to use it
            for depth in range(1, len(path) + 1):
                self._create(owner, path[:depth])
            folder = self._folder(owner, path)
            self._subscribe(owner, [path[:depth] for depth in range(1, len(path) + 1)])
            self._clean_tmp(folder.dir)
        except OSError as exc:
            raise ItemError(f"cannot create mail folder {'/'.join(path)!r} for {owner}: {exc.strerror or exc}") from None
        return folder.rel

    async def find(self, owner: str, path: tuple[str, ...], target: Target) -> DestRef | None:
        folder = self._folder(owner, path)
        self._scan(folder)
        if target.dest_key not in folder.keys:
            return None  # the index is complete for this run: a miss costs no directory listing
        relname = self._newest(folder, target.dest_key)
        if relname is None:
            self._scan(folder, refresh=True)  # renamed (new flags) or removed since we looked
            relname = self._newest(folder, target.dest_key)
        if relname is None:
            return None
        try:
            relname = self._sync_flags(folder, relname, target)
            size, digest = file_digest(folder.dir / relname)
        except OSError as exc:
            raise ItemError(f"cannot read {folder.rel}/{relname}: {exc.strerror or exc}") from None
        return DestRef(target.dest_key, f"{folder.rel}/{relname}", size, digest)

    async def put(self, owner: str, path: tuple[str, ...], target: Target, replace: DestRef | None = None) -> DestRef:
        folder = self._folder(owner, path)
        self._scan(folder)
        mtime_ns = _mtime_ns(target.metadata.get("internal_date"))
        unique = self._unique()
        partial = folder.dir / "tmp" / unique
        try:
            size, vsize, head, digest = await self._stream(target, partial)
            found_id = header_value(head, SOURCE_HEADER)
            if found_id is not None and found_id != target.dest_key:
                raise ItemError(f"the message says it is {found_id!r} but was stored as {target.dest_key!r}")
            flags = self._flag_letters(folder, target.metadata.get("flags") or ())
            now_ns = time.time_ns()  # atime now: a leftover in tmp/ stays for the full 36 hours
            os.utime(partial, ns=(now_ns, mtime_ns if mtime_ns is not None else now_ns))
            relname = f"cur/{unique},S={size},W={vsize}:2,{flags}"
            os.rename(partial, folder.dir / relname)
            _fsync_dir(folder.dir / "cur")
        except OSError as exc:
            raise ItemError(f"cannot write a message into {folder.rel}: {exc.strerror or exc}") from None
        finally:
            partial.unlink(missing_ok=True)
        folder.add(unique, relname, target.dest_key)
        if replace is not None:
            self._remove_replaced(folder, target.dest_key, unique, replace)
        return DestRef(target.dest_key, f"{folder.rel}/{relname}", size, digest)

    async def stat(self, owner: str, ref: DestRef) -> DestRef | None:
        file = self._resolve(ref.dest_id)
        if file is None:
            return None
        try:
            size, digest = file_digest(file)
        except FileNotFoundError:
            return None
        return DestRef(ref.dest_key, file.relative_to(self.root).as_posix(), size, digest, ref.etag)

    async def delete(self, owner: str, ref: DestRef) -> bool:
        file = self._resolve(ref.dest_id)
        if file is None:
            return False
        try:
            file.unlink()
        except FileNotFoundError:
            return False
        return True

    async def list_keys(self, owner: str, path: tuple[str, ...]) -> set[str]:
        folder = self._folder(owner, path)
        if not folder.dir.is_dir():
            return set()
        self._scan(folder, refresh=True)  # one listing per container: verification wants the disk
        return set(folder.keys)

    # ------------------------------------------------------------------ folders

    def _folder(self, owner: str, path: tuple[str, ...]) -> _Folder:
        rel = _safe_owner(owner)
        dirname = folder_dirname(path)
        if dirname:
            rel = f"{rel}/{dirname}"
        folder = self._folders.get(rel)
        if folder is None:
            folder = self._folders[rel] = _Folder(self.root / rel, rel)
        return folder

    def _create(self, owner: str, path: tuple[str, ...]) -> None:
        folder = self._folder(owner, path)
        for sub in ("cur", "new", "tmp"):
            (folder.dir / sub).mkdir(mode=_MODE_DIR, parents=True, exist_ok=True)
        if folder_dirname(path):
            marker = folder.dir / "maildirfolder"  # tells Dovecot's LDA this is a Maildir++ subfolder
            if not marker.exists():
                marker.touch(mode=_MODE_FILE)

    def _subscribe(self, owner: str, paths: list[tuple[str, ...]]) -> None:
        """Adds folders to Dovecot's V2 subscriptions file, which clients show by default."""
        file = self.root / _safe_owner(owner) / SUBSCRIPTIONS_FILE
        entries: list[str] = []
        if file.exists():
            text = file.read_text(encoding="utf-8", errors="surrogateescape")
            if not text.startswith("V\t2\n"):
                return  # an older format written by someone else: not ours to rewrite
            entries = [line for line in text.split("\n\n", 1)[-1].split("\n") if line]
        wanted = [subscription_entry(path) for path in paths]
        missing = [entry for entry in wanted if entry not in entries]
        if missing or not file.exists():
            _write_atomically(file, "V\t2\n\n" + "".join(f"{entry}\n" for entry in entries + missing))

    def _clean_tmp(self, folder: Path) -> None:
        """Removes deliveries that died in tmp/: untouched (atime and mtime) for 36 hours."""
        cutoff = time.time() - TMP_MAX_AGE
        try:
            entries = list(os.scandir(folder / "tmp"))
        except FileNotFoundError:
            return
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
                if entry.is_file(follow_symlinks=False) and max(info.st_atime, info.st_mtime) < cutoff:
                    os.unlink(entry.path)
            except FileNotFoundError:
                continue

    # ------------------------------------------------------------------ the index

    def _scan(self, folder: _Folder, refresh: bool = False) -> None:
        """Builds (first use) or refreshes the folder's index from disk. Files already known are
        matched by their unique name, so only new files have their header read."""
        if folder.scanned and not refresh:
            return
        present: dict[str, str] = {unique_part(rel.split("/", 1)[1]): rel for rel in _message_names(folder.dir)}
        for unique in [u for u in folder.files if u not in present]:
            folder.drop(unique)
        for unique, relname in present.items():
            known = folder.files.get(unique)
            if known is not None:
                folder.files[unique] = (relname, known[1])
                continue
            try:
                key = read_source_id(folder.dir / relname)
            except FileNotFoundError:
                continue  # removed while we listed
            except OSError as exc:
                raise ItemError(f"cannot read {folder.rel}/{relname}: {exc.strerror or exc}") from None
            folder.add(unique, relname, key)
        folder.scanned = True

    def _newest(self, folder: _Folder, key: str) -> str | None:
        """The newest file holding `key`, if it is still where the index says."""
        uniques = folder.keys.get(key)
        if not uniques:
            return None
        relname = folder.files[uniques[-1]][0]
        return relname if (folder.dir / relname).exists() else None  # else moved or gone: refresh

    def _resolve(self, dest_id: str) -> Path | None:
        """The file a dest_id names, following a rename of its flags (Dovecot renames on every
        flag change) or a move from new/ to cur/."""
        parts = Path(dest_id).parts
        if len(parts) < 3 or ".." in parts or Path(dest_id).is_absolute() or parts[-2] not in ("cur", "new"):
            return None
        file = self.root / dest_id
        if file.is_file():
            return file
        folder_dir = file.parent.parent
        unique = unique_part(parts[-1])
        for relname in _message_names(folder_dir):
            if unique_part(relname.split("/", 1)[1]) == unique:
                return folder_dir / relname
        return None

    def _remove_replaced(self, folder: _Folder, key: str, kept: str, replace: DestRef) -> None:
        """After the new file is in place: the replaced one, and older copies of the same message
        in this folder that an interrupted replacement left behind."""
        old = self._resolve(replace.dest_id)
        if old is not None and unique_part(old.name) != kept:
            old.unlink(missing_ok=True)
            owner_folder = self._folders.get(old.parent.parent.relative_to(self.root).as_posix())
            if owner_folder is not None:
                owner_folder.drop(unique_part(old.name))
        for unique in list(folder.keys.get(key, [])):
            if unique != kept:
                (folder.dir / folder.files[unique][0]).unlink(missing_ok=True)
                folder.drop(unique)

    # ------------------------------------------------------------------ writing

    def _unique(self) -> str:
        now = time.time_ns()
        seconds, usec = divmod(now // 1000, 1_000_000)
        return f"{seconds}.M{usec}P{os.getpid()}Q{next(self._counter)}.{self._host}"

    async def _stream(self, target: Target, partial: Path) -> tuple[int, int, bytes, str]:
        """Writes the payload to `partial` and syncs it: (size, virtual size, header start, sha256)."""
        size = 0
        head = b""
        lines = _LineCounter()
        digest = hashlib.sha256()
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _MODE_FILE)
        with os.fdopen(fd, "wb") as handle:
            async for chunk in target.payload.chunks():
                handle.write(chunk)
                size += len(chunk)
                digest.update(chunk)
                lines.feed(chunk)
                if len(head) < _HEADER_LIMIT:
                    head += chunk[: _HEADER_LIMIT - len(head)]
            handle.flush()
            os.fsync(handle.fileno())
        return size, size + lines.bare_lf, head, digest.hexdigest()

    # ------------------------------------------------------------------ flags

    def _flag_letters(self, folder: _Folder, flags: Iterable[str]) -> str:
        """Maildir info letters for IMAP flags: system flags upper case, keywords as the folder's
        dovecot-keywords letters. Unknown system flags (\\Recent) are not stored by Maildir."""
        letters: set[str] = set()
        keywords: list[str] = []
        for flag in flags:
            if flag.startswith("\\"):
                letter = _SYSTEM_FLAGS.get(flag.lower())
                if letter:
                    letters.add(letter)
            elif flag:
                keywords.append(flag)
        letters.update(self._keyword_letters(folder, keywords))
        return "".join(sorted(letters))

    def _keyword_letters(self, folder: _Folder, keywords: list[str]) -> set[str]:
        table = self._keywords(folder)
        letters: set[str] = set()
        added = False
        for keyword in keywords:
            if any(c.isspace() or ord(c) < 0x21 or ord(c) > 0x7E for c in keyword):
                self.dropped_keywords.setdefault(folder.rel, set()).add(keyword)
                continue  # not an IMAP atom, and dovecot-keywords is split on whitespace
            index = next((i for i, known in enumerate(table) if known is not None and known.lower() == keyword.lower()), None)
            if index is None:
                index = next((i for i, known in enumerate(table) if known is None), None)
                if index is None:
                    if len(table) >= MAX_KEYWORDS:
                        self.dropped_keywords.setdefault(folder.rel, set()).add(keyword)
                        continue
                    table.append(None)
                    index = len(table) - 1
                table[index] = keyword
                added = True
            letters.add(chr(ord("a") + index))
        if added:
            text = "".join(f"{i} {name}\n" for i, name in enumerate(table) if name is not None)
            _write_atomically(folder.dir / KEYWORDS_FILE, text)
        return letters

    def _keywords(self, folder: _Folder) -> list[str | None]:
        """The folder's dovecot-keywords table, read once: its letters must keep their meaning."""
        if folder.keywords is None:
            table: list[str | None] = []
            try:
                text = (folder.dir / KEYWORDS_FILE).read_text(encoding="utf-8", errors="replace")
            except FileNotFoundError:
                text = ""
            for line in text.splitlines():
                number, _, name = line.partition(" ")
                if number.isdigit() and name and int(number) < MAX_KEYWORDS:
                    table.extend([None] * (int(number) + 1 - len(table)))
                    table[int(number)] = name
            folder.keywords = table
        return folder.keywords

    def _sync_flags(self, folder: _Folder, relname: str, target: Target) -> str:
        """Renames a found message to the target's flags and sets its date, as Dovecot would on
        STORE; a target without flag metadata leaves the file as it is."""
        file = folder.dir / relname
        mtime_ns = _mtime_ns(target.metadata.get("internal_date"))
        if mtime_ns is not None and abs(file.stat().st_mtime_ns - mtime_ns) >= 1_000_000_000:
            os.utime(file, ns=(time.time_ns(), mtime_ns))
        if "flags" not in target.metadata:
            return relname
        name = relname.split("/", 1)[1]
        wanted = self._flag_letters(folder, target.metadata.get("flags") or ())
        if info_flags(name) == wanted and ":2," in name:
            return relname
        base = name.partition(":2,")[0] if ":2," in name else name
        renamed = f"cur/{base}:2,{wanted}"
        os.rename(file, folder.dir / renamed)
        folder.files[unique_part(base)] = (renamed, folder.files[unique_part(base)][1])
        return renamed
