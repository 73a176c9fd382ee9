"""Item content that the sandbox generates on demand, so a 200 MB file or a 30 MB message is
never held in memory whole. Every blob is deterministic and can be read from any offset."""

from __future__ import annotations

import random
from collections.abc import Iterator

BLOCK = 64 * 1024


class Blob:
    """A byte string of known size, produced in chunks; `chunks(start, end)` serves Range reads."""

    size: int

    def chunks(self, start: int = 0, end: int | None = None, chunk_size: int = BLOCK) -> Iterator[bytes]:
        raise NotImplementedError

    def read_all(self) -> bytes:
        return b"".join(self.chunks())


class BytesBlob(Blob):
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)

    def chunks(self, start: int = 0, end: int | None = None, chunk_size: int = BLOCK) -> Iterator[bytes]:
        end = self.size if end is None else min(end, self.size)
        for offset in range(start, end, chunk_size):
            yield self.data[offset : min(offset + chunk_size, end)]


class RandomBlob(Blob):
    """Pseudo-random bytes from a seed, computed per 64 KiB block so any range is cheap to serve."""

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed = size, seed

    def _block(self, index: int) -> bytes:
        return random.Random(self.seed * 1_000_003 + index).randbytes(BLOCK)

    def chunks(self, start: int = 0, end: int | None = None, chunk_size: int = BLOCK) -> Iterator[bytes]:
        end = self.size if end is None else min(end, self.size)
        offset = start
        while offset < end:
            index, within = divmod(offset, BLOCK)
            piece = self._block(index)[within : within + min(BLOCK - within, end - offset)]
            yield piece
            offset += len(piece)


class ConcatBlob(Blob):
    """Several blobs one after another, e.g. MIME headers, a large base64 part, a closing boundary."""

    def __init__(self, parts: list[Blob]) -> None:
        self.parts = parts
        self.size = sum(p.size for p in parts)

    def chunks(self, start: int = 0, end: int | None = None, chunk_size: int = BLOCK) -> Iterator[bytes]:
        end = self.size if end is None else min(end, self.size)
        offset = 0
        for part in self.parts:
            part_start, part_end = offset, offset + part.size
            if part_end > start and part_start < end:
                yield from part.chunks(max(start - part_start, 0), min(end, part_end) - part_start, chunk_size)
            offset = part_end
            if offset >= end:
                break
