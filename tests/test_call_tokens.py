"""A join token has exactly one spelling. base64 alone is lenient (padding,
the standard `+/` alphabet, skipped characters, a last character's unused
bits), so before this rule another spelling of a real link passed and burnt
its nonce. Every other spelling is now refused as forged and burns nothing."""

import base64
import string

import pytest

from call.tokens import JoinTokens, TokenError

SECRET = b"k" * 32
NOW = 1_800_000_000.0
ALPHABET = string.ascii_letters + string.digits + "-_"


def lenient(part: str) -> bytes | None:
    """What base64 makes of a part when nothing insists on one spelling (the old decoder)."""
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except ValueError:
        return None


def same_bytes_spellings(token: str) -> set[str]:
    """Each position's alternative characters that decode to the same bytes."""
    out = set()
    parts = token.split(".")
    for p, part in enumerate(parts):
        want = lenient(part)
        for i, ch in enumerate(part):
            for alt in ALPHABET + "+/":
                if alt == ch:
                    continue
                other = part[:i] + alt + part[i + 1:]
                if lenient(other) == want:
                    out.add(".".join(parts[:p] + [other] + parts[p + 1:]))
    return out


def other_spellings(token: str) -> set[str]:
    body, sig = token.split(".")
    out = same_bytes_spellings(token)
    for pad in ("=", "==", "==="):
        out |= {f"{body}{pad}.{sig}", f"{body}.{sig}{pad}", f"{body}{pad}.{sig}{pad}"}
    out.add(token.replace("-", "+").replace("_", "/"))                       # the standard alphabet
    out |= {token[:i] + {"-": "+", "_": "/"}[c] + token[i + 1:] for i, c in enumerate(token) if c in "-_"}
    for ws in (" ", "\t", "\n", "\r\n"):
        out |= {ws + token, token + ws, f"{body}{ws}.{sig}", f"{body}.{ws}{sig}", body[:5] + ws + body[5:] + "." + sig}
    out |= {token[:i] + "!" + token[i:] for i in (0, 3, len(body) + 1, len(token))}   # characters base64 skips
    out |= {token.upper(), token.lower(), token.swapcase()}
    out |= {token[:i] + token[i].swapcase() + token[i + 1:] for i, c in enumerate(token) if c.isalpha()}
    out.discard(token)
    return out


def test_every_other_spelling_is_forged_and_the_real_link_still_works_once():
    t = JoinTokens(SECRET, ttl_s=600)
    counted_same_bytes = 0
    for n in range(12):
        token, claims = t.issue("sess-a", NOW)
        same = same_bytes_spellings(token)
        assert all(lenient(s.split(".")[0]) == lenient(token.split(".")[0]) and
                   lenient(s.split(".")[1]) == lenient(token.split(".")[1]) for s in same)
        counted_same_bytes += len(same)
        spellings = other_spellings(token)
        assert len(spellings) > 50
        for s in spellings:
            # whatever else would be wrong with it (another shopper, expired: reasons that burn a
            # nonce), a respelt token is forged first, and burns nothing
            for session, now in (("sess-a", NOW + 1), ("sess-b", NOW + 1), (None, NOW + 1), ("sess-a", NOW + 601)):
                with pytest.raises(TokenError) as e:
                    t.redeem(s, session, now)
                assert e.value.reason == "forged", (s, session, now, e.value.reason)
        assert t.redeem(token, "sess-a", NOW + 2) == claims                  # the real link, still whole
        with pytest.raises(TokenError) as e:
            t.redeem(token, "sess-a", NOW + 3)
        assert e.value.reason == "used"
    # the HMAC's 32 bytes leave 2 unused bits in the signature's last character: 3 other spellings
    # of it at least, per token, each of which used to pass
    assert counted_same_bytes >= 12 * 3
