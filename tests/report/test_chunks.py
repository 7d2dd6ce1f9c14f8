"""The stored form of report entries: chunks of a thousand, compressed."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.report.chunks import CHUNK, pack, unpack
from syncd.report.model import canonical

json_text = st.text()  # any text, newlines and control characters included: canonical escapes them
entry = st.dictionaries(st.sampled_from(["name", "reason", "modified", "local_id"]), json_text | st.integers(-(2**63), 2**63 - 1) | st.none())


@settings(max_examples=60, deadline=None)
@given(st.lists(entry, max_size=2 * CHUNK + 5))
def test_entries_come_back_as_they_went_in(entries):
    texts = [canonical(e) for e in entries]
    chunks = list(pack(texts))
    assert [first for first, _ in chunks] == list(range(0, len(texts), CHUNK))
    assert [e for _, stored in chunks for e in unpack(stored)] == texts


@pytest.mark.parametrize("stored", [b"not zlib", "text", None, zlib.compress(b"x")[:-3], zlib.compress(b"\xff\xfe")])
def test_anything_else_is_a_value_error(stored):
    with pytest.raises(ValueError):
        unpack(stored)
