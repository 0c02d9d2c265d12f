"""Bearer tokens: format, entropy, storage as a hash, constant-time comparison."""

from __future__ import annotations

import hashlib

from omipacs.access import tokens


def test_new_tokens_are_random_prefixed_and_stored_as_their_hash() -> None:
    made = [tokens.new_token() for _ in range(50)]
    assert len({t.secret for t in made}) == 50
    for t in made:
        assert t.secret.startswith("omi_") and tokens.looks_like_token(t.secret)
        assert len(t.secret) - len("omi_") >= 43  # 32 bytes = 256 bits, base64url
        assert t.prefix == t.secret[:12]
        assert t.sha256 == hashlib.sha256(t.secret.encode()).hexdigest()
        assert t.secret not in t.sha256
        assert tokens.matches(t.secret, t.sha256)
        assert not tokens.matches(t.secret + "x", t.sha256)


def test_malformed_values_are_recognised_before_any_lookup() -> None:
    for value in ("", "omi_", "Bearer x", "omi_" + "a" * 10, "omi_" + "a" * 100,
                  "omi_" + "é" * 43, "xyz_" + "a" * 43, "omi_" + "a/" * 22):
        assert not tokens.looks_like_token(value), value
