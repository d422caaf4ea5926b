"""The staff console's login, sessions and request checks: pure code, no I/O.

* **Login.** Staff log in with their PIN alone (`StaffUsers.verify(None, pin)`,
  run by the service off the event loop). A good PIN gets a random session
  token (`secrets.token_urlsafe(32)`), kept only here, in memory, with an
  expiry of `staff.session_ttl_min`; a kiosk restart logs everyone out.
* **The cookie** `mirror_staff`: HttpOnly, SameSite=Strict, Path=/staff,
  Max-Age = the session's lifetime, and Secure when the request came over TLS.
* **Failed logins** are counted per client address: after
  `LOGIN_FAILURES_PER_MINUTE` (5) failures within a minute every login from that
  address gets 429 until the oldest failure is a minute old, a right PIN too.
* **Origin.** Every state-changing request (each POST, and the websocket
  handshake) must carry an `Origin` header naming the staff listener itself
  (`scheme://host:port` for its configured host, plus `localhost` for a
  loopback host) or one of `staff.allowed_origins`. A foreign Origin gets 403,
  and so does a missing one: browsers always send Origin on a POST and on a
  websocket handshake, so only a non-browser client can leave it out, and such
  a script can just as well send the listener's own origin. With
  `staff.host = 0.0.0.0` the listener cannot know the name the tablets use:
  put it in `staff.allowed_origins` (e.g. `http://mirror3.store.lan:8080`).
"""

from __future__ import annotations

import collections
import ipaddress
import secrets
from dataclasses import dataclass
from typing import Iterable

COOKIE = "mirror_staff"
COOKIE_PATH = "/staff"
LOGIN_FAILURES_PER_MINUTE = 5
LOGIN_FAILURES_PER_MINUTE_ALL = 30  # from all addresses together: many addresses must not multiply the guesses
LOGIN_WINDOW_S = 60.0
MAX_SESSIONS = 500                 # the oldest is dropped beyond this (a script logging in in a loop)


@dataclass
class StaffSession:
    token: str
    who: str
    created: float                 # unix seconds
    expires: float


class Sessions:
    """Logged-in staff, by token; `now` is unix time (wall clock, as the cookie's Max-Age)."""

    def __init__(self, ttl_s: float):
        self.ttl_s = float(ttl_s)
        self._by_token: dict[str, StaffSession] = {}

    def create(self, who: str, now: float) -> StaffSession:
        self.expire(now)
        while len(self._by_token) >= MAX_SESSIONS:
            oldest = min(self._by_token.values(), key=lambda s: s.created)
            del self._by_token[oldest.token]
        s = StaffSession(secrets.token_urlsafe(32), who, now, now + self.ttl_s)
        self._by_token[s.token] = s
        return s

    def get(self, token: str | None, now: float) -> StaffSession | None:
        """The live session for a cookie value, else None (unknown, expired, or no cookie)."""
        if not token or not isinstance(token, str) or len(token) > 100:
            return None
        s = self._by_token.get(token)
        if s is None:
            return None
        if s.expires <= now:
            del self._by_token[token]
            return None
        return s

    def drop(self, token: str | None) -> StaffSession | None:
        return self._by_token.pop(token, None) if token else None

    def expire(self, now: float) -> list[StaffSession]:
        gone = [s for s in self._by_token.values() if s.expires <= now]
        for s in gone:
            del self._by_token[s.token]
        return gone

    def keep_only(self, users: set[str]) -> list[StaffSession]:
        """Drop the sessions of anyone not in `users` (removed with `mirror staff
        remove-user` while logged in); returns them."""
        gone = [s for s in self._by_token.values() if s.who not in users]
        for s in gone:
            del self._by_token[s.token]
        return gone

    def __len__(self) -> int:
        return len(self._by_token)


class LoginLimiter:
    """Failed logins per client address, and from all addresses together
    (`limit_all`), in a sliding window; `now` is monotonic. A PIN is the only
    credential, so forty addresses at five guesses each would otherwise try two
    hundred PINs a minute. The price: a flood of wrong PINs holds new logins off
    for everyone for a minute; consoles already logged in keep working."""

    ALL = "*"                                   # the key of the all-addresses count

    def __init__(self, limit: int = LOGIN_FAILURES_PER_MINUTE, window_s: float = LOGIN_WINDOW_S,
                 limit_all: int = LOGIN_FAILURES_PER_MINUTE_ALL):
        self.limit = limit
        self.limit_all = limit_all
        self.window_s = window_s
        self._fails: dict[str, collections.deque[float]] = {}
        self._refused: dict[str, float] = {}       # client -> when its refusals were last audited

    def _recent(self, client: str, now: float) -> collections.deque[float] | None:
        q = self._fails.get(client)
        if q is None:
            return None
        while q and q[0] <= now - self.window_s:
            q.popleft()
        if not q:
            del self._fails[client]
            return None
        return q

    def blocked(self, client: str, now: float) -> bool:
        return self.retry_after(client, now) > 0

    def retry_after(self, client: str, now: float) -> int:
        """Seconds until the next attempt from `client` is allowed (0 if it is)."""
        wait = 0
        for key, limit in ((client, self.limit), (self.ALL, self.limit_all)):
            q = self._recent(key, now)
            if q is not None and len(q) >= limit:
                # the attempt that frees a place is the (len - limit + 1)-th oldest
                wait = max(wait, max(1, int(q[len(q) - limit] + self.window_s - now + 0.999)))
        return wait

    def failed(self, client: str, now: float) -> None:
        """Count a failed attempt. The web side counts every attempt as failed before checking the PIN
        (so parallel guesses cannot slip past the limit) and `forgive`s it when the PIN was right."""
        self._fails.setdefault(client, collections.deque()).append(now)
        self._fails.setdefault(self.ALL, collections.deque()).append(now)
        if len(self._fails) > 10_000:                     # a scan must not grow this without bound
            for k in list(self._fails):
                self._recent(k, now)                      # drops the clients with nothing recent

    def first_refusal(self, client: str, now: float) -> bool:
        """True for the first refused attempt from `client` in a window: that one is audited,
        the flood after it only counted, so a guesser cannot fill the audit table."""
        last = self._refused.get(client)
        if last is not None and now - last < self.window_s:
            return False
        if len(self._refused) > 10_000:
            self._refused = {k: t for k, t in self._refused.items() if now - t < self.window_s}
        self._refused[client] = now
        return True

    def forgive(self, client: str, when: float) -> None:
        """Take back the attempt counted at `when` (the PIN was right)."""
        for key in (client, self.ALL):
            q = self._fails.get(key)
            if q is not None:
                try:
                    q.remove(when)
                except ValueError:
                    pass
                if not q:
                    del self._fails[key]


def _host_for_url(host: str) -> str:
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host.lower()
    return f"[{ip.compressed}]" if ip.version == 6 else ip.compressed


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host.lower().rstrip(".") == "localhost"


def allowed_origins(scheme: str, host: str, port: int, extra: str | Iterable[str] = "") -> set[str]:
    """The origins allowed to change state on a listener at scheme://host:port (plus `extra`,
    comma-separated or a list). A browser leaves a scheme's default port out of Origin."""
    hosts = {_host_for_url(host)} if host and host not in ("0.0.0.0", "::", "[::]") else set()
    if host and _is_loopback(host):
        hosts |= {"localhost", "127.0.0.1", "[::1]"}
    default = {"http": 80, "https": 443}.get(scheme)
    out = set()
    for h in hosts:
        out.add(f"{scheme}://{h}:{port}")
        if port == default:
            out.add(f"{scheme}://{h}")
    items = extra.split(",") if isinstance(extra, str) else list(extra)
    out |= {normalise_origin(o) for o in items if o.strip()}
    return out


def normalise_origin(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


def origin_problem(origin: str | None, allowed: set[str]) -> str | None:
    """None when `origin` may change state here, else why not (for the 403's body and the log)."""
    if origin is None or not origin.strip():
        return "no Origin header (send the staff console's own origin)"
    if normalise_origin(origin) not in allowed:
        return f"Origin {origin[:100]!r} is not the staff console's"
    return None


def cookie_header(token: str, max_age_s: float, *, secure: bool) -> str:
    """The Set-Cookie value for a new session."""
    parts = [f"{COOKIE}={token}", "HttpOnly", "SameSite=Strict", f"Path={COOKIE_PATH}",
             f"Max-Age={max(0, int(max_age_s))}"]
    if secure:
        parts.append("Secure")
    return "; ".join(parts)


def clear_cookie_header(*, secure: bool) -> str:
    parts = [f"{COOKIE}=", "HttpOnly", "SameSite=Strict", f"Path={COOKIE_PATH}", "Max-Age=0"]
    if secure:
        parts.append("Secure")
    return "; ".join(parts)
