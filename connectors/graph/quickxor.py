"""OneDrive's quickXorHash, computed while a download streams so a file is checked without being held.

Byte i lands at bit offset (i * 11) mod 160 of a 160-bit state, so its place depends only on
i mod 160: any run of bytes whose length is a multiple of 160 can be XOR-combined with the others
before anything is placed. Folding the stream in wide rows of 64 such runs keeps the work per
chunk to a handful of big-int XORs; the 160 byte positions are placed once, in `digest`.
"""

from __future__ import annotations

import base64

_BITS = 160
_SHIFT = 11
_PERIOD = _BITS  # byte positions repeat their bit offset every 160 bytes
_WIDE = _PERIOD * 64  # bytes folded per XOR: a multiple of the period, so folding is exact
_MASK = (1 << _BITS) - 1
_LENGTH_AT = (_BITS // 8 - 8) * 8  # the length is XORed into the last 8 of the 20 bytes


class QuickXorHash:
    """Incremental; `update` takes chunks of any size and split."""

    def __init__(self) -> None:
        self._folded = 0  # XOR of every complete wide row, as a little-endian int
        self._tail = bytearray()  # the incomplete wide row; it always starts at a row boundary
        self.length = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self.length += len(data)
        self._tail += data
        whole = len(self._tail) - len(self._tail) % _WIDE
        if not whole:
            return
        with memoryview(self._tail) as view:
            for start in range(0, whole, _WIDE):
                self._folded ^= int.from_bytes(view[start : start + _WIDE], "little")
        del self._tail[:whole]

    def digest(self) -> bytes:
        wide = (self._folded ^ int.from_bytes(self._tail, "little")).to_bytes(_WIDE, "little")
        period = 0
        for start in range(0, _WIDE, _PERIOD):
            period ^= int.from_bytes(wide[start : start + _PERIOD], "little")
        state = 0
        for position, byte in enumerate(period.to_bytes(_PERIOD, "little")):
            state ^= byte << (position * _SHIFT % _BITS)
        state = (state & _MASK) ^ (state >> _BITS)  # bits pushed past the top wrap to the bottom
        state ^= (self.length & (1 << 64) - 1) << _LENGTH_AT
        return state.to_bytes(_BITS // 8, "little")

    def b64(self) -> str:
        return base64.b64encode(self.digest()).decode("ascii")
