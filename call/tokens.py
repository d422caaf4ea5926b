"""Join tokens and join-attempt rate limiting: pure code, no I/O.

A token is `base64url(claims).base64url(HMAC-SHA256(secret, claims))`, where
claims = {"s": shopper session id, "n": nonce, "e": expiry (unix seconds)},
base64url unpadded, in exactly one spelling (any other is forged).
It is bound to one shopper session (a new shopper makes old links useless),
expires, and is single-use: the nonce is burnt on the first join, accepted or
not. The secret is per kiosk (see `load_secret`).
"""

from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from mirror.core.config import SECRET_BYTES

# Reasons sent to the friend's page; it has a message for each.
FORGED, EXPIRED, USED, ENDED, RATE_LIMITED = "forged", "expired", "used", "ended", "rate_limited"


class TokenError(Exception):
    def __init__(self, reason: str, detail: str = ""):
        self.reason = reason
        super().__init__(detail or reason)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    """Decode the one spelling `_b64` makes, else ValueError. base64 alone is
    lenient: it takes padding, `+/`, skips characters outside its alphabet and
    ignores a last character's unused bits, so several strings decode to the
    same bytes; a token in any other spelling is refused as forged (and so
    cannot burn the real link's nonce)."""
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(data) != text:
        raise ValueError("not the canonical base64url spelling")
    return data


@dataclass(frozen=True)
class Claims:
    session: str
    nonce: str
    expires: float


class JoinTokens:
    """Issues and redeems join tokens for the current shopper session."""

    def __init__(self, secret: bytes, ttl_s: float = 600.0):
        if len(secret) < 16:
            raise ValueError("join token secret must be at least 16 bytes")
        self._secret = secret
        self.ttl_s = ttl_s
        self._used: dict[str, float] = {}      # nonce -> expiry, kept until it expires anyway

    def _sign(self, body: bytes) -> bytes:
        return hmac.new(self._secret, body, hashlib.sha256).digest()

    def issue(self, session: str, now: float) -> tuple[str, Claims]:
        claims = Claims(session, secrets.token_urlsafe(12), round(now + self.ttl_s, 3))
        body = json.dumps({"s": claims.session, "n": claims.nonce, "e": claims.expires},
                          separators=(",", ":")).encode()
        return f"{_b64(body)}.{_b64(self._sign(body))}", claims

    def check(self, token: object, session: str | None, now: float) -> Claims:
        """Validate without redeeming; raises TokenError."""
        if not isinstance(token, str) or token.count(".") != 1 or len(token) > 512:
            raise TokenError(FORGED, "not a join token")
        body_b64, sig_b64 = token.split(".")
        try:
            body, sig = _unb64(body_b64), _unb64(sig_b64)
        except (ValueError, TypeError):
            raise TokenError(FORGED, "not a join token")
        if not hmac.compare_digest(sig, self._sign(body)):
            raise TokenError(FORGED, "bad signature")
        try:
            d = json.loads(body)
            claims = Claims(str(d["s"]), str(d["n"]), float(d["e"]))
        except (ValueError, KeyError, TypeError):
            raise TokenError(FORGED, "bad claims")
        if claims.nonce in self._used:
            raise TokenError(USED, "this link was already used")
        if now >= claims.expires:
            raise TokenError(EXPIRED, "this link has expired")
        if session is None or claims.session != session:
            raise TokenError(ENDED, "the shopper's session this link belongs to has ended")
        return claims

    def redeem(self, token: object, session: str | None, now: float) -> Claims:
        """Validate and burn the token. A valid-looking token is burnt even when
        it is refused for another reason, so it can never be retried."""
        self._forget_expired(now)
        try:
            claims = self.check(token, session, now)
        except TokenError as e:
            if e.reason in (EXPIRED, ENDED):
                self._burn(token)
            raise
        self._used[claims.nonce] = claims.expires
        return claims

    def _burn(self, token: object) -> None:
        try:
            d = json.loads(_unb64(str(token).split(".")[0]))
            self._used[str(d["n"])] = float(d["e"])
        except (ValueError, KeyError, TypeError, IndexError):
            pass

    def _forget_expired(self, now: float) -> None:
        for nonce in [n for n, e in self._used.items() if e <= now]:
            del self._used[nonce]


class RateLimiter:
    """At most `limit` attempts per `window_s` per client address."""

    def __init__(self, limit: int, window_s: float = 60.0):
        self.limit = limit
        self.window_s = window_s
        self._hits: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)

    def allow(self, client: str, now: float) -> bool:
        q = self._hits[client]
        while q and q[0] <= now - self.window_s:
            q.popleft()
        if len(q) >= self.limit:
            return False
        q.append(now)
        if len(self._hits) > 10_000:           # don't grow without bound under a scan
            for k in [k for k, v in self._hits.items() if not v]:
                del self._hits[k]
        return True


class SecretFileError(Exception):
    """call.secret_file cannot be used; the message is one line for the user."""


def load_secret(path: Path) -> bytes:
    """A per-kiosk secret kept in a file (created 0600 on first use; an existing
    one is never overwritten). Without one configured the kiosk makes a fresh
    random secret at each start, which is enough: tokens are bound to a shopper
    session, and sessions do not outlive the process."""
    try:
        data = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        data = None
    except OSError as e:
        raise SecretFileError(f"call.secret_file {path} cannot be read ({e.strerror}); make it readable by the "
                              "kiosk's user") from None
    if data is not None:
        if len(data) < SECRET_BYTES:
            raise SecretFileError(f"call.secret_file {path} holds {len(data)} bytes, a join-link secret needs "
                                  f"{SECRET_BYTES}; delete it and the kiosk makes a new one")
        return data
    data = secrets.token_bytes(SECRET_BYTES)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except OSError as e:
        raise SecretFileError(f"call.secret_file {path} cannot be made ({e.strerror}); point it into the kiosk's "
                              "state folder (e.g. /var/lib/smart-mirror/join.key) or leave it empty") from None
    return data
