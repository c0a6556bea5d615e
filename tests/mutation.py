"""Byte edits for property tests that mutate valid encodings: a strategy and its application."""

from __future__ import annotations

from hypothesis import strategies as st

Edit = tuple[str, int, bytes]  # kind, where (taken modulo the length), bytes it uses

EDITS = st.lists(
    st.tuples(st.sampled_from(["flip", "set", "cut", "insert", "truncate"]), st.integers(min_value=0), st.binary(min_size=1, max_size=4)),
    min_size=1,
    max_size=4,
)


def mutate(data: bytes, edits: list[Edit]) -> bytes:
    changed = bytearray(data)
    for kind, where, blob in edits:
        if not changed:
            break
        at = where % len(changed)
        if kind == "flip":
            changed[at] ^= 1 << (blob[0] % 8)
        elif kind == "set":
            changed[at] = blob[0]
        elif kind == "cut":
            del changed[at : at + 1 + blob[0] % 8]
        elif kind == "insert":
            changed[at:at] = blob
        else:
            del changed[at:]
    return bytes(changed)
