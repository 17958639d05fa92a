"""URL-safe base64 without padding, for the signed tokens the service hands out (cursors,
cluster ids, impression tokens).

One strict decoder for all of them: only the URL-safe alphabet, a bound on the length, and
the one spelling the encoder writes (base64 lets the last character's unused bits vary), so
a token a client sends back has exactly one form and costs a bounded amount to read.
"""

from __future__ import annotations

import binascii

_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")


def encode(raw: bytes) -> bytes:
    """``raw`` as URL-safe base64, unpadded (one call into C: tokens are signed per item)."""
    return binascii.b2a_base64(raw, newline=False).translate(_URLSAFE).rstrip(b"=")


def decode(text: str, max_len: int) -> bytes:
    """The bytes ``encode`` wrote as ``text``; ValueError for anything else, or longer than
    ``max_len`` characters."""
    if not isinstance(text, str) or not 0 < len(text) <= max_len:
        raise ValueError("not a string of a bounded length")
    try:
        raw = binascii.a2b_base64((text + "=" * (-len(text) % 4)).encode().translate(_FROM_URLSAFE), strict_mode=True)
    except binascii.Error:
        raise ValueError("not URL-safe base64") from None
    # Writing it again rejects what a decoder lets through: '+' or '/' in place of '-' or
    # '_', padding, and other values of the last character's unused bits.
    if encode(raw) != text.encode():
        raise ValueError("not the canonical spelling")
    return raw
