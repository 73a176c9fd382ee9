"""A sink that writes each item as a file under a local folder: the demo's target and a plain
export format. Writes go to a temporary name and are renamed, so a file is whole or absent."""

from __future__ import annotations

import hashlib
import os
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
    caps = Capabilities(hashes=("sha256",), mtime_precision=None, cheap_find=True, listing=True, delete=True)

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _dir(self, owner: str, path: tuple[str, ...]) -> Path:
        return self.root.joinpath(_safe_component(owner), *(_safe_component(p) for p in path))

    async def probe(self, owner: str) -> str:
        return writable_root(self.root)

    async def ensure_container(self, owner: str, path: tuple[str, ...]) -> str:
        folder = self._dir(owner, path)
        folder.mkdir(parents=True, exist_ok=True)
        return str(folder.relative_to(self.root))

    async def find(self, owner: str, path: tuple[str, ...], target: Target) -> DestRef | None:
        file = self._dir(owner, path) / _safe_component(target.dest_key)
        return self._ref(file) if file.is_file() else None

    async def put(self, owner: str, path: tuple[str, ...], target: Target, replace: DestRef | None = None) -> DestRef:
        folder = self._dir(owner, path)
        final = folder / _safe_component(target.dest_key)
        partial = folder / f".part-{target.dest_key}"  # a rerun after a crash overwrites the leftover
        try:
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
        return self._ref(final)

    async def stat(self, owner: str, ref: DestRef) -> DestRef | None:
        file = self.root / ref.dest_id
        return self._ref(file) if file.is_file() else None

    async def delete(self, owner: str, ref: DestRef) -> bool:
        try:
            (self.root / ref.dest_id).unlink()
        except FileNotFoundError:
            return False
        return True

    async def list_keys(self, owner: str, path: tuple[str, ...]) -> set[str]:
        folder = self._dir(owner, path)
        if not folder.is_dir():
            return set()
        return {p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith(".part-")}

    def _ref(self, file: Path) -> DestRef:
        digest = hashlib.sha256()
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return DestRef(file.name, str(file.relative_to(self.root)), file.stat().st_size, digest.hexdigest())
