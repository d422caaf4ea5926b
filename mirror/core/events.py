"""Every event on the bus, in one registry: its name and its payload.

`EventBus.publish(name, **data)` builds the registered payload from `data`,
so an unknown name, a missing field or a stray one fails where it is
published, not somewhere downstream. Handlers read `ev.data` (the payload's
fields as a dict) or `ev.payload` (the typed object).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

EVENTS: dict[str, type] = {}


def event(name: str):
    def register(cls):
        cls = dataclass(frozen=True)(cls)
        cls.name = name
        if name in EVENTS:
            raise ValueError(f"event {name!r} registered twice")
        EVENTS[name] = cls
        return cls
    return register


def payload(name: str, data: dict) -> Any:
    """The typed payload of event `name`; ValueError names what is wrong."""
    cls = EVENTS.get(name)
    if cls is None:
        raise ValueError(f"unknown event {name!r}; register it in mirror/core/events.py")
    try:
        return cls(**data)
    except TypeError as e:
        raise ValueError(f"event {name!r}: {e}") from None


def as_dict(p: Any) -> dict:
    return {f.name: getattr(p, f.name) for f in dataclasses.fields(p)}


# --- the shopper's input (vision/interaction.py, the on-screen buttons) ------
@event("gesture.fired")
class GestureFired:
    gesture: str
    score: float = 1.0


@event("motion.circle")
class MotionCircle:
    delta_deg: float                 # positive = clockwise as the shopper sees it
    total_deg: float = 0.0


@event("motion.swipe")
class MotionSwipe:
    direction: str                   # "left" or "right", as the shopper sees it


@event("cursor.dwell")
class CursorDwell:
    x: float                         # normalised display coords of the press
    y: float
    control: str | None = None       # the button the hold was on


@event("action.requested")
class ActionRequested:
    action: str                      # one of mirror.core.actions.ACTIONS
    source: str = "script"


@event("action.done")
class ActionDone:
    action: str
    source: str = ""


# --- the camera and presence ---------------------------------------------------
@event("presence.changed")
class PresenceChanged:
    present: bool


@event("camera.lost")
class CameraLost:
    message: str


@event("camera.restored")
class CameraRestored:
    message: str


@event("load.changed")
class LoadChanged:
    """A part needs (or frees) a CPU core: vision then rebuilds its slow
    garment model less often."""
    part: str
    busy: bool


@event("web.unavailable")
class WebUnavailable:
    """A listener of the web host could not start (its port taken, say)."""
    listener: str                    # "public" or "staff"
    message: str


# --- the session ---------------------------------------------------------------
@event("session.started")
class SessionStarted:
    id: str


@event("session.ended")
class SessionEnded:
    id: str
    wiped: bool = True


@event("cart.changed")
class CartChanged:
    cart: dict
    session_id: str


@event("product.select")
class ProductSelect:
    sku: str


@event("size.select")
class SizeSelect:
    size: str


@event("reserve.requested")
class ReserveRequested:
    """Put one aside in her size: her button (source "mirror"; the staff feature holds the stock)
    or a script; on=False takes the wish back."""
    on: bool = True
    source: str = "script"


@event("reservation.made")
class ReservationMade:
    """Stock is held for her: the mirror says so, the console lists it."""
    hold_id: int
    sku: str
    name: str
    colour: str
    size: str
    expires_at: float                # unix time


@event("reservation.failed")
class ReservationFailed:
    reason: str                      # one line for the mirror ("Size M in Emerald is sold out here")


# --- members (clienteling, only with her yes; issue 10) ----------------------------------
@event("member.tapped")
class MemberTapped:
    """A tag carrying a member id was read while she was at the mirror: the mirror asks her consent."""
    member_id: str
    first_name: str = ""


@event("member.consent")
class MemberConsent:
    """Her answer to "Show your profile to our staff?": only granted=True lets staff see it."""
    member_id: str
    first_name: str
    granted: bool


@event("suggestion.accepted")
class SuggestionAccepted:
    sku: str
    name: str = ""
    colour: str = ""
    size: str = ""
    price: str = ""


# --- staff suggestions on the mirror (the carousel; issue 10) -------------------
@event("suggestions.pushed")
class SuggestionsPushed:
    """Staff push cards to the mirror; a new push replaces the carousel."""
    items: list                      # dicts: sku, name, price (str), image (absolute path or ""),
    #                                  colour, size (str, may be ""), in_stock (bool, or None = unknown)
    by: str                          # the staff member's name
    push_id: str
    t_sent: float = 0.0              # time.monotonic() when the staff request arrived (benchmark)


@event("suggestions.shown")
class SuggestionsShown:
    """The first composed frame that shows a pushed card (push-to-frame latency)."""
    push_id: str
    sku: str
    t_sent: float
    shown_at: float                  # time.monotonic() after that frame was composed


@event("suggestion.taken")
class SuggestionTaken:
    """The shopper took the carousel's current card: the cart already has it."""
    sku: str
    name: str
    price: str
    colour: str
    size: str
    by: str = "shopper"


@event("suggestions.dismissed")
class SuggestionsDismissed:
    by: str = "shopper"


@event("look.saved")
class LookSaved:
    sku: str
    colour: str


@event("staff.called")
class StaffCalled:
    """She asked for staff: "help", or "size" (this product in `size` and `colour`, from the size picker)."""
    product: str
    kind: str = "help"
    size: str = ""
    colour: str = ""


# --- the friend call -------------------------------------------------------------
@event("call.requested")
class CallRequested:
    session: str


@event("call.link")
class CallLink:
    url: str
    expires: float                   # unix seconds


@event("call.admit")
class CallAdmit:
    name: str


@event("call.decline")
class CallDecline:
    name: str


@event("call.hangup")
class CallHangup:
    reason: str = "hung up"


@event("call.knock")
class CallKnock:
    conn: str
    name: str


@event("call.admitted")
class CallAdmitted:
    name: str


@event("call.connected")
class CallConnected:
    name: str


@event("call.reaction")
class CallReaction:
    name: str
    kind: str                        # like, love, comment
    text: str = ""


@event("call.snapshot")
class CallSnapshot:
    name: str


@event("call.ended")
class CallEnded:
    name: str = ""
    reason: str = ""


@event("call.refused")
class CallRefused:
    reason: str


# --- NFC and the checkout -----------------------------------------------------------
@event("nfc.status")
class NfcStatus:
    ok: bool
    message: str = ""
    readers: list = field(default_factory=list)


@event("nfc.tap")
class NfcTap:
    reader: str
    uid: bytes
    records: list = field(default_factory=list)     # ndeflib records
    t_present: float = 0.0           # monotonic time pcscd reported the card
    t_read: float = 0.0


@event("nfc.read_failed")
class NfcReadFailed:
    reader: str
    reason: str                      # "removed" or "error"
    message: str = ""
    t_present: float = 0.0


@event("nfc.removed")
class NfcRemoved:
    reader: str


@event("checkout.saved")
class CheckoutSaved:
    key: str
    order_id: str
    code: str
    pay: str
    created: bool
    state: str = "recorded"            # the journal's state of the order (an older one may be sent, rejected...)
    payment_status: str | None = None
    payment_url: str | None = None


@event("checkout.save_failed")
class CheckoutSaveFailed:
    key: str
    error: str


@event("checkout.delivered")
class CheckoutDelivered:
    order_id: str
    kind: str
    outcome: str
    payment_status: str | None = None
    payment_url: str | None = None


@event("checkout.confirmed")
class CheckoutConfirmed:
    order_id: str
    code: str
    pay: str
    key: str
    created: bool
    seq: int
    t_present: float | None = None


@event("checkout.confirm_shown")
class CheckoutConfirmShown:
    order_id: str
    seq: int
    latency_ms: float
    shown_at: float


@event("checkout.read_failed")
class CheckoutReadFailed:
    reason: str


@event("checkout.failed")
class CheckoutFailed:
    error: str


@event("checkout.cancelled")
class CheckoutCancelled:
    order_id: str


@event("checkout.refused")
class CheckoutRefused:
    order_id: str
    reason: str = ""


@event("checkout.repeat")
class CheckoutRepeat:
    order_id: str
    key: str


# --- tests and benches -------------------------------------------------------------
@event("bench.marker")
class BenchMarker:
    """A marker a test or bench puts on the bus to know everything before it was handled."""
    id: int


# --- the staff console (issue 10) ----------------------------------------------------
@event("staff.replied")
class StaffReplied:
    """A staff member answered the shopper's request from the console; the mirror shows the text."""
    request_id: str
    text: str                        # one line, at most 200 characters
    by: str                          # the staff member's name


@event("staff.escalated")
class StaffEscalated:
    """Nobody answered her request within staff.escalate_s: every console alerts again."""
    request_id: str
    times: int                       # how many times it has been escalated
