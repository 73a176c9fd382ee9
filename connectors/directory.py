"""A sink that writes each item as a file under a local folder: the demo's target and a plain
export format. Writes go to a temporary name and are renamed, so a file is whole or absent."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from migrator.errors import ConfigError, ItemError
from migrator.model import Capabilities, DestRef, Target


def _safe_component(name: str) -> str:
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name or name.startswith(".part-"):
        raise ItemError(f"{name!r} is not a safe file or folder name")
    return name


def writable_root(root: Path) -> str:
    """Preflight of a local target: its root folder exists or can be made, and is writable."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {root}: {exc.strerror}", hint="check the target's path") from None
    if not os.access(root, os.W_OK | os.X_OK):
        raise ConfigError(f"{root} is not writable by this user", hint="fix its permissions or choose another path")
    return f"{root} is writable"


class DirectorySink:
    """Each item a file below its container's folder. With `tree` (the files workload) a key may name
    subfolders ("a/b/c.txt"), each part checked to be a plain name, folder items are folders, and a
    container's listing is its whole tree; otherwise a subfolder is another container's (mail folders nest)."""

    caps = Capabilities(hashes=("sha256",), mtime_precision=None, cheap_find=True, listing=True, delete=True)

    def __init__(self, root: str | Path, tree: bool = False) -> None:
        self.root, self.tree = Path(root), tree

    def _dir(self, owner: str, path: tuple[str, ...]) -> Path:
        return self.root.joinpath(_safe_component(owner), *(_safe_component(p) for p in path))

    def _place(self, owner: str, path: tuple[str, ...], dest_key: str) -> Path:
        return self._dir(owner, path).joinpath(*(_safe_component(part) for part in dest_key.split("/")))

    async def probe(self, owner: str) -> str:
        return writable_root(self.root)

    async def ensure_container(self, owner: str, path: tuple[str, ...]) -> str:
        folder = self._dir(owner, path)
        folder.mkdir(parents=True, exist_ok=True)
        return str(folder.relative_to(self.root))

    async def find(self, owner: str, path: tuple[str, ...], target: Target) -> DestRef | None:
        place = self._place(owner, path, target.dest_key)
        if place.is_dir() and target.metadata.get("kind") == "folder":
            return self._folder_ref(place, target.dest_key)
        return self._ref(place, target.dest_key) if place.is_file() else None

    async def put(self, owner: str, path: tuple[str, ...], target: Target, replace: DestRef | None = None) -> DestRef:
        final = self._place(owner, path, target.dest_key)
        if target.metadata.get("kind") == "folder":
            async for _ in target.payload.chunks():  # nothing to write; the engine counts what was read
                pass
            final.mkdir(parents=True, exist_ok=True)
            return self._folder_ref(final, target.dest_key)
        if replace is None and final.exists():
            # Only a copy the ledger knows of is replaced: a file somebody else put there stays theirs.
            raise ItemError(f"{final.relative_to(self.root)} already exists at the target and was not written by this migration")
        # A short fixed-length name: a name the target allows (255 bytes) must not fail for its prefix. A rerun
        # after a crash overwrites the leftover.
        partial = final.parent / f".part-{hashlib.sha256(final.name.encode()).hexdigest()[:16]}"
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            with partial.open("wb") as handle:
                async for chunk in target.payload.chunks():
                    handle.write(chunk)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(partial, final)
        except OSError as exc:
            raise ItemError(f"cannot write {final}: {exc.strerror or exc}") from None
        finally:
            partial.unlink(missing_ok=True)
        if replace is not None and replace.dest_id != str(final.relative_to(self.root)):
            (self.root / replace.dest_id).unlink(missing_ok=True)
        return self._ref(final, target.dest_key)

    async def stat(self, owner: str, ref: DestRef) -> DestRef | None:
        place = self.root / ref.dest_id
        if place.is_dir():
            return self._folder_ref(place, ref.dest_key)
        return self._ref(place, ref.dest_key) if place.is_file() else None

    async def delete(self, owner: str, ref: DestRef) -> bool:
        place = self.root / ref.dest_id
        try:
            if place.is_dir():
                shutil.rmtree(place)  # as a WebDAV DELETE of a folder: the source deleted it with its contents
            else:
                place.unlink()
        except FileNotFoundError:
            return False
        return True

    async def list_keys(self, owner: str, path: tuple[str, ...]) -> set[str]:
        folder = self._dir(owner, path)
        if not folder.is_dir():
            return set()
        found = folder.rglob("*") if self.tree else (p for p in folder.iterdir() if p.is_file())
        return {p.relative_to(folder).as_posix() for p in found if not p.name.startswith(".part-")}

    def _folder_ref(self, folder: Path, key: str) -> DestRef:
        return DestRef(key, str(folder.relative_to(self.root)))

    def _ref(self, file: Path, key: str) -> DestRef:
        digest = hashlib.sha256()
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return DestRef(key, str(file.relative_to(self.root)), file.stat().st_size, digest.hexdigest())
