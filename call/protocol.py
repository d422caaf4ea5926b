"""The friend-call signalling protocol, sans I/O.

`Room` is the kiosk's side of the call: which shopper session links belong to,
who is knocking, who is in. `FriendProtocol` is one friend's websocket
conversation. Both are pure: they take parsed input and the time, and return
`Effect`s that the asyncio layer (`call/server.py`) carries out: send a
message, close, publish a bus notification, start or stop the WebRTC peer.

Page -> kiosk:  join {token, name} · offer {sdp} · candidate {candidate,
                sdpMid, sdpMLineIndex} · reaction {kind, text?} · snapshot · bye
Kiosk -> page:  lobby {name} · admitted · declined · answer {sdp} ·
                reaction_ok · ended {reason} · error {reason}
Any invalid message gets `error` and a close. Times are wall-clock seconds
(token expiry is absolute).
"""

from __future__ import annotations

import json
import math
import unicodedata
from dataclasses import dataclass, field
from enum import Enum

from call.tokens import RATE_LIMITED, JoinTokens, TokenError

MAX_MESSAGE_BYTES = 64 * 1024
MAX_NAME = 24
MAX_COMMENT = 80
REACTIONS = ("like", "love", "comment")
REACTION_BURST, REACTION_WINDOW_S = 5, 5.0

# error reasons the page knows how to explain
BUSY, BAD_MESSAGE, BAD_OFFER, NOT_NOW, TIMEOUT = "busy", "bad_message", "bad_offer", "not_now", "timeout"


class Phase(Enum):
    AWAIT_JOIN = "await_join"
    LOBBY = "lobby"
    ADMITTED = "admitted"        # waiting for the browser's offer
    IN_CALL = "in_call"
    CLOSED = "closed"


# --- effects ---------------------------------------------------------------
@dataclass(frozen=True)
class Send:
    msg: dict


@dataclass(frozen=True)
class Close:
    reason: str


@dataclass(frozen=True)
class Notify:
    name: str
    data: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Answer:
    """Start the peer from this offer; the I/O layer sends `answer` itself."""
    sdp: str


@dataclass(frozen=True)
class AddCandidate:
    candidate: str
    sdp_mid: str | None
    sdp_mline_index: int | None


@dataclass(frozen=True)
class StopPeer:
    pass


Effect = Send | Close | Notify | Answer | AddCandidate | StopPeer


def clean_name(raw: object) -> str:
    """A display name safe to draw: printable, short, never empty."""
    if not isinstance(raw, str):
        return "A friend"
    text = "".join(ch if unicodedata.category(ch)[0] in "LNPS" else " "
                   for ch in unicodedata.normalize("NFC", raw))
    text = " ".join(text.split())[:MAX_NAME]
    return text or "A friend"


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):               # 1e999 parses to inf
        raise ValueError(f"number out of range: {text[:20]}")
    return value


def parse_message(raw: str) -> object:
    """Strict JSON: NaN, Infinity and numbers too big for a float raise
    ValueError; nesting too deep for the parser raises RecursionError (the
    C scanner checks the depth itself, so it unwinds cleanly)."""
    return json.loads(raw, parse_constant=_no_constant, parse_float=_finite)


class Room:
    """Who may join and who is in, for the current shopper session."""

    def __init__(self, tokens: JoinTokens, max_friends: int = 1):
        self.tokens = tokens
        self.max_friends = max_friends
        self.session: str | None = None
        self.members: dict[str, str] = {}      # connection id -> name (knocking or in)

    def new_session(self, session: str | None) -> list[str]:
        """A shopper arrived (id) or left (None); returns the connections to end."""
        self.session = session
        ended = list(self.members)
        self.members.clear()
        return ended

    def join(self, conn: str, token: object, name: str, now: float) -> None:
        """Raises TokenError or BusyError; on success the friend is knocking.
        A busy mirror does not burn the token: the friend may try again later."""
        self.tokens.check(token, self.session, now)
        if len(self.members) >= self.max_friends:
            raise BusyError()
        self.tokens.redeem(token, self.session, now)
        self.members[conn] = name

    def leave(self, conn: str) -> None:
        self.members.pop(conn, None)


class BusyError(Exception):
    pass


class FriendProtocol:
    """One friend's websocket conversation with the kiosk."""

    def __init__(self, room: Room, conn: str, now: float, join_timeout_s: float = 10.0):
        self.room = room
        self.conn = conn
        self.phase = Phase.AWAIT_JOIN
        self.name = ""
        self.join_deadline = now + join_timeout_s
        self._reaction_times: list[float] = []

    # --- input from the page ----------------------------------------------
    def receive(self, raw: str | bytes, now: float) -> list[Effect]:
        if self.phase is Phase.CLOSED:
            return []
        if isinstance(raw, bytes) or len(raw) > MAX_MESSAGE_BYTES:
            return self._fail(BAD_MESSAGE)
        try:
            msg = parse_message(raw)
        except (ValueError, RecursionError):
            return self._fail(BAD_MESSAGE)
        if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
            return self._fail(BAD_MESSAGE)
        kind = msg["type"]
        if self.phase is Phase.AWAIT_JOIN:
            return self._on_join(msg, now) if kind == "join" else self._fail(BAD_MESSAGE)
        if kind == "bye":
            return self._end("friend_left", notify_reason="friend hung up")
        if kind == "reaction":
            return self._on_reaction(msg, now)
        if kind == "snapshot" and self.phase is Phase.IN_CALL:
            return [Notify("call.snapshot", {"name": self.name})]
        if kind == "offer":
            if self.phase is not Phase.ADMITTED:
                return self._fail(NOT_NOW)
            sdp = msg.get("sdp")
            if not isinstance(sdp, str) or not sdp.startswith("v=0"):
                return self._fail(BAD_OFFER)
            self.phase = Phase.IN_CALL
            return [Answer(sdp)]
        if kind == "candidate":
            if self.phase not in (Phase.ADMITTED, Phase.IN_CALL):
                return self._fail(NOT_NOW)
            cand = msg.get("candidate")
            if cand in (None, ""):
                return []                      # end of candidates
            mid, idx = msg.get("sdpMid"), msg.get("sdpMLineIndex")
            if (not isinstance(cand, str) or len(cand) > 1024 or (mid is not None and not isinstance(mid, str))
                    or (idx is not None and (not isinstance(idx, int) or isinstance(idx, bool)))):
                return self._fail(BAD_MESSAGE)
            return [AddCandidate(cand.removeprefix("candidate:"), mid, idx)]
        return self._fail(BAD_MESSAGE)

    def _on_join(self, msg: dict, now: float) -> list[Effect]:
        self.name = clean_name(msg.get("name"))
        try:
            self.room.join(self.conn, msg.get("token"), self.name, now)
        except TokenError as e:
            return self._fail(e.reason, notify=("call.refused", {"reason": e.reason}))
        except BusyError:
            return self._fail(BUSY, notify=("call.refused", {"reason": BUSY}))
        self.phase = Phase.LOBBY
        return [Send({"type": "lobby", "name": self.name}), Notify("call.knock", {"conn": self.conn, "name": self.name})]

    def _on_reaction(self, msg: dict, now: float) -> list[Effect]:
        if self.phase is not Phase.IN_CALL:
            return self._fail(NOT_NOW)
        kind = msg.get("kind")
        if kind not in REACTIONS:
            return self._fail(BAD_MESSAGE)
        text = ""
        if kind == "comment":
            raw = msg.get("text")
            if not isinstance(raw, str):
                return self._fail(BAD_MESSAGE)
            text = " ".join(raw.split())[:MAX_COMMENT]
            if not text:
                return []
        self._reaction_times = [t for t in self._reaction_times if t > now - REACTION_WINDOW_S]
        if len(self._reaction_times) >= REACTION_BURST:
            return [Send({"type": "error", "reason": RATE_LIMITED, "fatal": False})]
        self._reaction_times.append(now)
        return [Notify("call.reaction", {"name": self.name, "kind": kind, "text": text}),
                Send({"type": "reaction_ok", "kind": kind})]

    # --- input from the kiosk -------------------------------------------------
    def admit(self) -> list[Effect]:
        if self.phase is not Phase.LOBBY:
            return []
        self.phase = Phase.ADMITTED
        return [Send({"type": "admitted"}), Notify("call.admitted", {"name": self.name})]

    def decline(self) -> list[Effect]:
        if self.phase is not Phase.LOBBY:
            return []
        return self._end("declined", notify_reason="declined", msg_type="declined")

    def hang_up(self, reason: str) -> list[Effect]:
        """The shopper, staff or the kiosk ends the call (or the shopper left)."""
        return self._end(reason, notify_reason=reason)

    def peer_failed(self, reason: str) -> list[Effect]:
        return self._end("connection_lost", notify_reason=reason)

    def offer_failed(self) -> list[Effect]:
        return self._fail(BAD_OFFER)

    def tick(self, now: float) -> list[Effect]:
        if self.phase is Phase.AWAIT_JOIN and now > self.join_deadline:
            return self._fail(TIMEOUT)
        return []

    def disconnected(self) -> list[Effect]:
        """The websocket closed (tab closed, network gone) without a bye."""
        if self.phase is Phase.CLOSED:
            return []
        was = self.phase
        self.phase = Phase.CLOSED
        self.room.leave(self.conn)
        if was is Phase.AWAIT_JOIN:
            return []
        return [StopPeer(), Notify("call.ended", {"name": self.name, "reason": "friend disconnected"})]

    # --- helpers ---------------------------------------------------------------
    def _fail(self, reason: str, notify: tuple[str, dict] | None = None) -> list[Effect]:
        was = self.phase
        self.phase = Phase.CLOSED
        self.room.leave(self.conn)
        out: list[Effect] = [Send({"type": "error", "reason": reason}), Close(reason)]
        if notify:
            out.append(Notify(*notify))
        if was in (Phase.LOBBY, Phase.ADMITTED, Phase.IN_CALL):
            out += [StopPeer(), Notify("call.ended", {"name": self.name, "reason": reason})]
        return out

    def _end(self, reason: str, *, notify_reason: str, msg_type: str = "ended") -> list[Effect]:
        if self.phase is Phase.CLOSED:
            return []
        self.phase = Phase.CLOSED
        self.room.leave(self.conn)
        # The reason goes out before the media stops: a browser that sees its
        # peer connection fail first would say "connection lost" instead.
        return [Send({"type": msg_type, "reason": reason}), StopPeer(), Close(reason),
                Notify("call.ended", {"name": self.name, "reason": notify_reason})]
