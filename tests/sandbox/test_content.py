from __future__ import annotations

import pytest

from migrator.sandbox.content import BLOCK, BytesBlob, ConcatBlob, RandomBlob


@pytest.mark.parametrize(("start", "end"), [(0, None), (1, 10), (BLOCK - 3, BLOCK + 5), (2 * BLOCK, 3 * BLOCK + 1), (5, 5)])
def test_any_range_equals_the_slice_of_the_whole(start, end):
    blob = ConcatBlob([BytesBlob(b"head\r\n"), RandomBlob(3 * BLOCK + 17, seed=4), BytesBlob(b"--end--")])
    whole = blob.read_all()
    assert len(whole) == blob.size
    assert b"".join(blob.chunks(start, end)) == whole[start:end]


def test_random_blobs_are_deterministic_per_seed():
    assert RandomBlob(1000, 1).read_all() == RandomBlob(1000, 1).read_all() != RandomBlob(1000, 2).read_all()
