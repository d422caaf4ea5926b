"""Tap-to-checkout as a small, pure state machine.

No I/O here: `Checkout.handle(event)` updates the state and returns commands
for the service (nfc.service) to carry out: write an order, cancel one,
announce something on the bus. `Checkout.view(now)` describes what the mirror
should show (drawn by render.compositor).

Phases:

    idle --Tapped--> saving --Saved--> open --(confirm_s elapsed)--> idle
                        |                 \\--CancelGesture--> idle (order cancelled)
                        \\--SaveFailed--> idle (error notice)

Rules:
* The confirmation only appears after `Saved`, i.e. after the order is
  committed to disk.
* A tap of the same card with the same cart (a double tap) gives the same
  idempotency key, so the journal returns the same order, shown as it now
  stands (sent, or refused by the store).
* Once she cancels, her next tap is a new attempt with a new key: a new order,
  never the cancelled one confirmed again.
* A different card while a checkout is saving or open is refused politely.
* A card pulled mid-read (`ReadFailed`) says "tap again"; nothing is written.
  A failure of a card put down before the one being checked out is ignored.
* Cancelling is a gesture (the session's `cancel` action).
* A new session (a new shopper) or the shopper leaving closes the checkout.
* With nobody at the mirror (no session open) a tap is refused with a
  message: the cart left behind is the next shopper's empty default.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from mirror.core.canonical import canonical_json
from mirror.core.events import CartChanged, CheckoutDelivered, SessionEnded, SessionStarted  # noqa: F401

NOTICE_S = 4.0


def idempotency_key(session_id: str, card_id: str, cart: dict, attempt: int = 0) -> str:
    """The same session + card + cart (+ attempt: how many checkouts she has
    cancelled in this session) always gives the same key."""
    fields = {"v": 1, "session": session_id, "card": card_id, "cart": cart}
    if attempt:
        fields["attempt"] = attempt
    blob = canonical_json(fields)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def card_identity(member_id: str | None, uid_hash: str) -> str:
    """Who is paying: the member id when the tag carries one (phones may
    randomise their UID), else the salted hash of the UID."""
    return f"m:{member_id}" if member_id else f"u:{uid_hash}"


# --- events ------------------------------------------------------------------
# CartChanged, SessionStarted, SessionEnded and Delivered are the bus's own
# payloads (the service hands `ev.payload` straight in); the rest carry what it
# derived.
Delivered = CheckoutDelivered


@dataclass(frozen=True)
class Tapped:
    member_id: str | None
    uid_hash: str
    name: str = ""                 # first name from the tag, shown only
    t_present: float = 0.0         # when pcscd reported the card (monotonic)
    now: float = 0.0


@dataclass(frozen=True)
class ReadFailed:
    reason: str                    # "removed" or "error"
    now: float = 0.0
    t_present: float = 0.0         # when pcscd reported that card (0: unknown)


@dataclass(frozen=True)
class Saved:
    key: str
    order_id: str
    code: str
    pay: str                       # "store" or "till"
    created: bool
    now: float = 0.0
    state: str = "recorded"        # an order the journal already had: how it stands now
    payment_status: str | None = None
    payment_url: str | None = None


@dataclass(frozen=True)
class SaveFailed:
    key: str
    error: str
    now: float = 0.0


@dataclass(frozen=True)
class CancelGesture:
    now: float = 0.0


@dataclass(frozen=True)
class ReaderStatus:
    ok: bool
    message: str


@dataclass(frozen=True)
class Tick:
    now: float


# --- commands -------------------------------------------------------------------
@dataclass(frozen=True)
class SaveOrder:
    key: str
    session_id: str
    card_id: str
    member_id: str | None
    uid_hash: str
    cart: dict


@dataclass(frozen=True)
class CancelOrder:
    order_id: str


@dataclass(frozen=True)
class Announce:
    name: str
    data: dict


# --- what the screen shows ------------------------------------------------------
@dataclass
class CheckoutView:
    kind: str                      # confirmed, saving, refused, retry, cancelled, error, status
    title: str = ""
    lines: list[str] = field(default_factory=list)
    code: str = ""                 # the till code, drawn big
    status: str = ""               # reader status, drawn small
    seq: int = 0                   # which confirmation this is (for the tap-to-confirm metric)
    order_id: str = ""
    t_present: float | None = None


@dataclass
class _Open:
    key: str
    card_id: str
    name: str
    t_present: float
    order_id: str = ""
    code: str = ""
    pay: str = ""
    created: bool = True
    repeat: int = 0
    payment_status: str | None = None
    payment_url: str | None = None
    cancel_requested: bool = False


class Checkout:
    def __init__(self, *, confirm_s: float = 20.0, notice_s: float = NOTICE_S):
        self.confirm_s = confirm_s
        self.notice_s = notice_s
        self.phase = "idle"
        self.cart: dict | None = None
        self.session_id = ""
        self.current: _Open | None = None
        self.open_until = 0.0
        self.notice: tuple[str, str, list[str], float] | None = None   # kind, title, lines, until
        self.reader_ok = True
        self.reader_message = ""
        self.seq = 0
        self.present = False           # a shopper's session is open: only then does a tap buy
        self.attempt = 0               # checkouts cancelled in this session: part of the next key

    # --- transitions ------------------------------------------------------
    def _close(self) -> None:
        self.phase = "idle"
        self.current = None

    def _say(self, kind: str, title: str, lines: list[str], now: float) -> None:
        self.notice = (kind, title, lines, now + self.notice_s)

    def handle(self, ev) -> list:
        if isinstance(ev, CartChanged):
            if ev.session_id != self.session_id:
                self._close()
                self.notice = None
                self.attempt = 0
            self.cart, self.session_id = ev.cart, ev.session_id
            return []
        if isinstance(ev, SessionStarted):
            self.present = True
            return []
        if isinstance(ev, SessionEnded):
            # she left: the next cart.changed is the next shopper's default cart,
            # which nobody chose; taps are refused until someone steps up
            self._close()
            self.notice = None
            self.cart = None
            self.present = False
            return []
        if isinstance(ev, ReaderStatus):
            self.reader_ok, self.reader_message = ev.ok, ev.message
            return []
        if isinstance(ev, Tick):
            if self.phase == "open" and ev.now >= self.open_until:
                self._close()
            if self.notice and ev.now >= self.notice[3]:
                self.notice = None
            return []
        if isinstance(ev, ReadFailed):
            if (self.phase in ("saving", "open") and self.current and ev.t_present
                    and ev.t_present < self.current.t_present):
                # a card put down before the one being bought, on another reader, given up
                # on only now: its "try again" must not cover this checkout's confirmation
                return []
            if ev.reason == "removed":
                self._say("retry", "Card moved away too soon — tap again",
                          ["Hold it still on the reader until the mirror confirms"], ev.now)
            else:
                self._say("retry", "That card could not be read — try again",
                          ["Or ask a member of staff"], ev.now)
            return [Announce("checkout.read_failed", {"reason": ev.reason})]
        if isinstance(ev, Tapped):
            return self._tapped(ev)
        if isinstance(ev, Saved):
            return self._saved(ev)
        if isinstance(ev, SaveFailed):
            if self.phase == "saving" and self.current and self.current.key == ev.key:
                self._close()
                self._say("error", "Sorry — the order could not be recorded",
                          ["Please ask a member of staff"], ev.now)
            return [Announce("checkout.failed", {"error": ev.error})]
        if isinstance(ev, Delivered):
            cur = self.current
            if cur and cur.order_id == ev.order_id and ev.kind == "create":
                cur.payment_status = ev.payment_status if ev.outcome == "ok" else "rejected"
                cur.payment_url = ev.payment_url
            return []
        if isinstance(ev, CancelGesture):
            cur = self.current
            if self.phase == "saving" and cur:
                cur.cancel_requested = True
                return []
            if self.phase == "open" and cur:
                return self._cancelled(cur.order_id, ev.now)
            return []
        raise TypeError(f"unknown checkout event {ev!r}")

    def _tapped(self, ev: Tapped) -> list:
        card_id = card_identity(ev.member_id, ev.uid_hash)
        cur = self.current
        if not self.present:
            self._say("refused", "Step in front of the mirror to check out",
                      ["The mirror checks out the shopper it can see"], ev.now)
            return [Announce("checkout.refused", {"order_id": "", "reason": "nobody present"})]
        if self.phase in ("saving", "open") and cur and cur.card_id != card_id:
            self._say("refused", "Sorry, this checkout is open for another card",
                      ["Finish it, or cancel it with a thumbs-down, then tap again"], ev.now)
            return [Announce("checkout.refused", {"order_id": cur.order_id})]
        if not self.cart or not self.cart.get("items"):
            self._say("error", "Nothing to check out yet", ["Pick a garment first"], ev.now)
            return [Announce("checkout.refused", {"order_id": "", "reason": "empty cart"})]
        key = idempotency_key(self.session_id, card_id, self.cart, self.attempt)
        if cur and cur.key == key:
            if self.phase == "open":          # a double tap: the same order, shown again
                cur.repeat += 1
                self.open_until = ev.now + self.confirm_s
                self.notice = None
                return [Announce("checkout.repeat", {"order_id": cur.order_id, "key": key})]
            return []                          # still saving this very cart
        self.phase = "saving"
        self.current = _Open(key, card_id, ev.name, ev.t_present)
        self.notice = None
        return [SaveOrder(key, self.session_id, card_id, ev.member_id, ev.uid_hash, dict(self.cart))]

    def _saved(self, ev: Saved) -> list:
        cur = self.current
        if self.phase != "saving" or cur is None or cur.key != ev.key:
            return []                          # stale: the checkout moved on
        cur.order_id, cur.code, cur.pay, cur.created = ev.order_id, ev.code, ev.pay, ev.created
        if not ev.created:
            if ev.state == "cancelled":
                # never confirm an order that is gone; her next tap starts a new one
                self._close()
                self.attempt += 1
                self._say("cancelled", f"Order {ev.order_id[:4]}… was cancelled", ["Tap again for a new order"],
                          ev.now)
                return [Announce("checkout.refused", {"order_id": ev.order_id, "reason": "cancelled"})]
            cur.repeat += 1                    # the journal already had it: the same order, as it stands
            cur.payment_status = "rejected" if ev.state == "rejected" else ev.payment_status
            cur.payment_url = ev.payment_url
        if cur.cancel_requested:
            return self._cancelled(ev.order_id, ev.now)
        self.phase = "open"
        self.open_until = ev.now + self.confirm_s
        self.seq += 1
        return [Announce("checkout.confirmed", {"order_id": ev.order_id, "code": ev.code, "pay": ev.pay,
                                                "key": ev.key, "created": ev.created, "seq": self.seq,
                                                "t_present": cur.t_present})]

    def _cancelled(self, order_id: str, now: float) -> list:
        self._close()
        self.attempt += 1
        self._say("cancelled", f"Order {order_id[:4]}… cancelled", ["Nothing to pay"], now)
        return [CancelOrder(order_id), Announce("checkout.cancelled", {"order_id": order_id})]

    # --- view -------------------------------------------------------------
    def view(self, now: float) -> CheckoutView | None:
        status = "" if self.reader_ok else self.reader_message
        if self.notice and now < self.notice[3]:
            kind, title, lines, _ = self.notice
            return CheckoutView(kind, title, list(lines), status=status)
        cur = self.current
        if self.phase == "saving" and cur:
            return CheckoutView("saving", "One moment…", ["Recording your order"], status=status)
        if self.phase == "open" and cur:
            who = f", {cur.name}" if cur.name else ""
            title = f"Got it{who}: order {cur.order_id[:4]}… is ready to pay"
            lines: list[str] = []
            code = ""
            if cur.pay == "till":
                lines.append("Pay at the till with this code:")
                code = cur.code
            else:
                ps = cur.payment_status
                if ps is None:
                    lines.append("Sending it to the store checkout…")
                elif ps == "rejected":
                    lines.append("The store checkout could not take it; staff will help at the till")
                else:
                    lines.append(f"Store checkout: {ps}")
                if cur.payment_url:
                    lines.append(f"Pay on your phone: {cur.payment_url}")
                lines.append(f"Or pay at the till with code {cur.code}")
            if cur.repeat:
                lines.append("Same order — you already tapped")
            lines.append("Thumbs-down to cancel")
            return CheckoutView("confirmed", title, lines, code=code, status=status, seq=self.seq,
                                order_id=cur.order_id, t_present=cur.t_present)
        if status:
            return CheckoutView("status", "", [], status=status)
        return None
