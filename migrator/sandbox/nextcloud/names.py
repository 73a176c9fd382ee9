"""Which file and folder names the server refuses, with Nextcloud 30/31's defaults and messages
(its FilenameValidator): the lists are also what the `files` capabilities announce."""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_NAME_BYTES = 250  # oc_filecache keeps names up to 250 bytes


def _lower(values: list[str]) -> list[str]:
    return [v.lower() for v in values]


@dataclass(frozen=True)
class NamePolicy:
    """Nextcloud's defaults: `.htaccess` is reserved, `\\` and `/` never allowed, `.part` always a
    forbidden extension (the server's own temporary files), `.filepart` by default."""

    filenames: list[str] = field(default_factory=lambda: [".htaccess"])
    basenames: list[str] = field(default_factory=list)
    characters: list[str] = field(default_factory=list)
    extensions: list[str] = field(default_factory=lambda: [".filepart"])

    @property
    def forbidden_filenames(self) -> list[str]:
        return _lower(self.filenames)

    @property
    def forbidden_basenames(self) -> list[str]:
        return _lower(self.basenames)

    @property
    def forbidden_characters(self) -> list[str]:
        return ["\\", "/"] + [c for c in self.characters if c not in ("\\", "/")]

    @property
    def forbidden_extensions(self) -> list[str]:
        return _lower(self.extensions) + ([] if ".part" in _lower(self.extensions) else [".part"])

    def capabilities(self) -> dict[str, list[str]]:
        return {
            "forbidden_filenames": self.forbidden_filenames,
            "forbidden_filename_basenames": self.forbidden_basenames,
            "forbidden_filename_characters": self.forbidden_characters,
            "forbidden_filename_extensions": self.forbidden_extensions,
        }

    def problem(self, name: str) -> str | None:
        """Why Nextcloud would refuse `name` (its exception message), or None when it is allowed."""
        trimmed = name.strip()
        if trimmed == "":
            return "Empty filename is not allowed"
        if trimmed in (".", ".."):
            return "Dot files are not allowed"
        if len(name.encode()) > MAX_NAME_BYTES:
            return "Filename is too long"
        lowered = name.lower()
        if lowered in self.forbidden_filenames:
            return f'"{lowered}" is a forbidden file or folder name.'
        dot = lowered.find(".", 1)
        basename = lowered if dot < 0 else lowered[:dot]
        if basename in self.forbidden_basenames:
            return f'"{lowered}" is a forbidden prefix for file or folder names.'
        for extension in self.forbidden_extensions:
            if lowered.endswith(extension):
                if extension.startswith("."):
                    return f'"{extension}" is a forbidden file type.'
                return f'Filenames must not end with "{extension}".'
        if any(ord(c) < 32 for c in name):
            return "Invalid character in path"  # control characters are stripped by PHP's filter, then refused
        for char in self.forbidden_characters:
            if char in name:
                return f'"{char}" is not allowed inside a file or folder name.'
        return None
