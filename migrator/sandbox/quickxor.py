"""OneDrive's quickXorHash, the only content hash OneDrive for Business and SharePoint report.

The hash is a 160-bit state into which byte i is XORed at bit offset (i * 11) mod 160, wrapping
around the top, followed by the total length (int64 little-endian) XORed into the last 8 bytes.
Because 11 * 160 is a multiple of 160, the offset of byte i depends only on i mod 160. So the input
can first be XOR-folded into one 160-byte vector (all bytes with the same i mod 160 XORed together)
and only those 160 bytes need placing. The folding runs on big Python ints, i.e. in C, which keeps a
200 MB file well under a second.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable

WIDTH_BITS = 160
WIDTH = WIDTH_BITS // 8  # 20-byte digest
ROW = WIDTH_BITS  # one fold row: the 160 byte positions that share no shift
SHIFT = 11
_ROW_BITS = ROW * 8
_STATE_MASK = (1 << WIDTH_BITS) - 1
# Larger pieces are folded in slices of this many rows, so memory stays bounded for huge updates.
_SLICE_ROWS = 8192

_low_masks: dict[int, int] = {}


def _low_mask(rows: int) -> int:
    """Mask of the lowest `rows` rows; cached because the same few row counts recur per chunk size."""
    mask = _low_masks.get(rows)
    if mask is None:
        mask = (1 << (rows * _ROW_BITS)) - 1
        if len(_low_masks) < 64:
            _low_masks[rows] = mask
    return mask


def _fold_rows(data: bytes | memoryview) -> int:
    """XOR of all 160-byte rows of `data` (a whole number of rows), as a little-endian int."""
    value = int.from_bytes(data, "little")
    rows = len(data) // ROW
    while rows > 1:
        # The low ceil(rows/2) rows absorb the high floor(rows/2) rows; works for odd counts too.
        keep = rows - rows // 2
        value = (value & _low_mask(keep)) ^ (value >> (keep * _ROW_BITS))
        rows = keep
    return value


class QuickXorHash:
    """Incremental quickXorHash; `update` accepts chunks of any length, in any split."""

    def __init__(self) -> None:
        self._folded = 0  # XOR of all complete rows, row-aligned to stream position 0
        self._pending = b""  # bytes of the current, incomplete row (fewer than ROW)
        self._length = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        self._length += len(view)
        if self._pending:
            need = ROW - len(self._pending)
            self._pending += bytes(view[:need])
            view = view[need:]
            if len(self._pending) < ROW:
                return
            self._folded ^= int.from_bytes(self._pending, "little")
            self._pending = b""
        whole = len(view) - len(view) % ROW
        step = _SLICE_ROWS * ROW
        for start in range(0, whole, step):
            self._folded ^= _fold_rows(view[start : min(start + step, whole)])
        self._pending = bytes(view[whole:])

    def digest(self) -> bytes:
        folded = (self._folded ^ int.from_bytes(self._pending, "little")).to_bytes(ROW, "little")
        state = 0
        for position, byte in enumerate(folded):
            if byte:
                shift = position * SHIFT % WIDTH_BITS
                rotated = (byte << shift) | (byte >> (WIDTH_BITS - shift))
                state ^= rotated & _STATE_MASK
        out = bytearray(state.to_bytes(WIDTH, "little"))
        for index, length_byte in enumerate(self._length.to_bytes(8, "little", signed=True)):
            out[WIDTH - 8 + index] ^= length_byte
        return bytes(out)

    def b64(self) -> str:
        return base64.b64encode(self.digest()).decode("ascii")


def quick_xor_hash(chunks: Iterable[bytes]) -> str:
    """Base64 quickXorHash of the concatenated chunks, as Graph reports it in file.hashes."""
    hasher = QuickXorHash()
    for chunk in chunks:
        hasher.update(chunk)
    return hasher.b64()
