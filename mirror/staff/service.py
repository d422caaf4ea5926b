"""The staff console as a kiosk feature.

It talks to the rest of the kiosk only through the bus:

  in:  session.started / session.ended, cart.changed, action.done, look.saved,
       call.*, checkout.*, staff.called, staff.replied, suggestions.pushed,
       suggestions.shown, suggestion.taken, suggestions.dismissed,
       suggestion.accepted, web.unavailable
  out: suggestions.pushed (a staff push), staff.replied (a staff answer)

`MirrorCard` (pure) turns those events into the live card the console shows:
who is there (never an image of her), what she tries on, the call, the cart
and checkout, her open requests with their age, the suggestions and what she
took, and the last 30 events of the session (names and times only). When she
leaves, the card says so and forgets her requests, suggestions and profile.

The web side (`routes.py`) runs on the kiosk's asyncio loop; bus handlers run
on the main thread; both go through `self.lock`. Every database call (the
argon2 PIN check, the catalogue, the audit) runs on one worker thread of its
own, which owns the SQLite connections, so the loop (which also carries the
friend call's video) never waits for the disk or for argon2.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from mirror.core.bus import Event, EventBus
from mirror.core.config import CONFIG_DIR, Config
from mirror.core.feature import Feature
from mirror.staff.auth import LoginLimiter, Sessions, allowed_origins

log = logging.getLogger(__name__)

IMAGES_DIR = CONFIG_DIR / "catalog-images"       # the example catalogue CSV's pictures (config/README.md)
TIMELINE_MAX = 30
MAX_SUGGESTIONS = 12
REQUESTS_MAX = 50

NEWS_MAX = 20
RESERVATIONS_SHOWN = 100
USERS_CHECK_S = 5.0                               # how soon a removed staff user's sessions end
UPKEEP_S = 30.0                                   # how often expired holds are marked and the list re-read

# events the card listens to (besides the prefixes call.* and checkout.*)
_EVENTS = ("session.started", "session.ended", "cart.changed", "action.done", "look.saved", "staff.called",
           "staff.replied", "suggestions.pushed", "suggestions.shown", "suggestion.taken",
           "suggestions.dismissed", "suggestion.accepted", "reserve.requested", "reservation.made",
           "reservation.failed", "member.tapped", "member.consent", "staff.escalated")
_QUIET = {"checkout.confirm_shown", "call.link", "call.reaction", "call.snapshot"}   # not on the timeline


class CardError(Exception):
    """A staff request the card cannot serve: `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class MirrorCard:
    """The live mirror card: pure state fed `handle(name, data, now)` (now = unix seconds)."""
    present: bool = False
    ended: bool = False
    session_id: str = ""
    started_at: float | None = None
    ended_at: float | None = None
    cart: dict = field(default_factory=lambda: {"items": [], "reserve": False})
    call: dict | None = None
    checkout: dict | None = None
    requests: list[dict] = field(default_factory=list)
    suggestions: list[dict] = field(default_factory=list)
    suggestion_status: str = "none"                       # none | pushed | shown | dismissed
    push: dict | None = None                              # {push_id, by, at}
    accepted: list[dict] = field(default_factory=list)
    profile: dict | None = None                           # the member card, only after her yes
    member_status: str = "none"                           # none | asked | shared | declined (this session)
    timeline: deque = field(default_factory=lambda: deque(maxlen=TIMELINE_MAX))
    # store-wide, not about the shopper at the mirror: they stay when she leaves
    reservations: list[dict] = field(default_factory=list)
    news: deque = field(default_factory=lambda: deque(maxlen=NEWS_MAX))
    listener_problem: str = ""
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    # --- derived ----------------------------------------------------------------
    @property
    def item(self) -> dict:
        items = self.cart.get("items") or []
        return items[0] if items else {}

    @property
    def size(self) -> str:
        return str(self.item.get("size", ""))

    # --- events ----------------------------------------------------------------------
    def handle(self, name: str, data: dict, now: float) -> bool:
        """Apply one bus event; True when the card changed."""
        if name == "web.unavailable":
            if data.get("listener") != "staff":
                return False
            self.listener_problem = str(data.get("message", ""))
            return True
        if name == "session.started":
            self._forget_her()
            self.present, self.ended = True, False
            self.session_id, self.started_at, self.ended_at = str(data.get("id", "")), now, None
        elif name == "session.ended":
            self._forget_her()
            self.present, self.ended, self.ended_at = False, True, now
        elif name == "cart.changed":
            self.cart = _plain(data.get("cart") or {"items": [], "reserve": False})
            self.session_id = str(data.get("session_id", self.session_id))
        elif name == "staff.called":
            self.requests.append(self._request(data, now))
            del self.requests[:-REQUESTS_MAX]
        elif name == "member.tapped":
            if self.present and self.member_status == "none":
                self.member_status = "asked"
        elif name == "member.consent":
            self.member_status = "shared" if data.get("granted") else "declined"
        elif name == "staff.replied":
            r = self.find_request(str(data.get("request_id", "")))
            if r is not None and r["answered_by"] is None:
                r.update(answered_by=str(data.get("by", "")), reply=str(data.get("text", "")), answered_at=now)
        elif name.startswith("call."):
            self._on_call(name, data, now)
        elif name.startswith("checkout."):
            self._on_checkout(name, data, now)
        elif name == "suggestions.pushed":
            self.push = {"push_id": str(data.get("push_id", "")), "by": str(data.get("by", "")), "at": now}
            self.suggestions = [_suggestion_for_staff(it, self.push) for it in data.get("items") or []]
            self.suggestion_status = "pushed"
        elif name == "suggestions.shown":
            if self.push and data.get("push_id") == self.push["push_id"] and self.suggestion_status == "pushed":
                self.suggestion_status = "shown"
        elif name == "suggestions.dismissed":
            if self.suggestions:
                self.suggestion_status = "dismissed"
        elif name == "suggestion.taken":
            taken = {k: str(data.get(k, "")) for k in ("sku", "name", "price", "colour", "size")}
            taken.update(by=str(data.get("by", "")), at=now,
                         pushed_by=self.push["by"] if self.push else "")
            if all(a["sku"].casefold() != taken["sku"].casefold() for a in self.accepted):
                self.accepted.append(taken)
            for s in self.suggestions:
                if s["sku"].casefold() == taken["sku"].casefold():
                    s["taken"] = True
        elif name not in ("action.done", "look.saved", "suggestion.accepted", "reserve.requested",
                          "reservation.made", "reservation.failed", "staff.escalated"):
            return False
        if name != "cart.changed" and name not in _QUIET:
            label = f"action:{data.get('action')}" if name == "action.done" else name
            if name == "member.consent":
                label = "member: profile shared" if data.get("granted") else "member: profile kept private"
            self.timeline.append({"event": label, "t": now})
        return True

    def _forget_her(self) -> None:
        """A new shopper or none: nothing of the last one stays on the console."""
        self.requests, self.suggestions, self.accepted = [], [], []
        self.suggestion_status, self.push, self.profile = "none", None, None
        self.member_status = "none"
        self.call = self.checkout = None
        self.timeline.clear()

    def _request(self, data: dict, now: float) -> dict:
        """A request from `staff.called`: what she asked for, else what she has on."""
        it = self.item
        sku = str(data.get("product", ""))
        same = it.get("sku") == sku or not sku
        kind = str(data.get("kind") or "help")
        return {"id": f"r{next(self._ids)}-{secrets.token_hex(3)}", "kind": kind,
                "product": {"sku": sku or str(it.get("sku", "")),
                            "name": str(it.get("name", "")) if same else sku},
                "colour": str(data.get("colour") or (it.get("colour", "") if same else "")),
                "size": str(data.get("size") or (it.get("size", "") if same else "")),
                "at": now, "answered_by": None, "reply": "", "answered_at": None, "alerts": 1, "alerted_at": now}

    def escalate(self, now: float, every_s: float) -> list[dict]:
        """Open requests nobody answered for `every_s` since their last alert: alert again."""
        due = []
        for r in self.requests:
            if r["answered_by"] is None and now - r["alerted_at"] >= every_s:
                r["alerts"] += 1
                r["alerted_at"] = now
                due.append(r)
        return due

    def find_request(self, request_id: str) -> dict | None:
        return next((r for r in self.requests if r["id"] == request_id), None)

    def _on_call(self, name: str, data: dict, now: float) -> None:
        who = str(data.get("name", ""))
        if name == "call.requested":
            self.call = {"state": "inviting", "name": "", "since": now}
        elif name == "call.knock":
            self.call = {"state": "knocking", "name": who, "since": now}
        elif name == "call.admitted":
            self.call = {"state": "connecting", "name": who, "since": now}
        elif name == "call.connected":
            since = self.call["since"] if self.call and self.call.get("state") == "connecting" else now
            self.call = {"state": "connected", "name": who, "since": since}
        elif name in ("call.ended", "call.decline"):
            self.call = None
        elif name == "call.refused" and self.call and self.call.get("state") == "inviting":
            self.call = None

    def _on_checkout(self, name: str, data: dict, now: float) -> None:
        order = str(data.get("order_id", ""))
        current = self.checkout.get("order_id") if self.checkout else None
        if name in ("checkout.saved", "checkout.confirmed", "checkout.repeat"):
            state = {"checkout.saved": "saved", "checkout.confirmed": "confirmed",
                     "checkout.repeat": "confirmed"}[name]
            self.checkout = {"state": state, "order_id": order, "code": str(data.get("code", "")),
                             "pay": str(data.get("pay", "")), "at": now, "note": ""}
        elif name == "checkout.delivered" and current == order:
            self.checkout.update(state=f"delivered ({data.get('outcome', '')})", at=now)
        elif name == "checkout.cancelled" and current == order:
            self.checkout.update(state="cancelled", at=now)
        elif name in ("checkout.failed", "checkout.save_failed"):
            self.checkout = {"state": "failed", "order_id": current or "", "code": "", "pay": "", "at": now,
                             "note": str(data.get("error", ""))[:200]}
        elif name == "checkout.read_failed":
            self.checkout = {**(self.checkout or {"state": "tap again", "order_id": "", "code": "", "pay": ""}),
                             "at": now, "note": "card moved away too soon"}
        elif name == "checkout.refused":
            if self.checkout:
                self.checkout["note"] = "another card was refused"

    # --- for the console ------------------------------------------------------------
    def snapshot(self, now: float) -> dict:
        # with nobody there the mirror's cart is only its default garment: show nothing
        it = self.item if self.present else {}
        product = {"sku": str(it.get("sku", "")), "name": str(it.get("name", "")),
                   "price": str(it.get("price", ""))} if it else None
        return {
            "present": self.present, "ended": self.ended, "session_id": self.session_id,
            "started_at": self.started_at, "ended_at": self.ended_at,
            "product": product, "colour": str(it.get("colour", "")), "size": str(it.get("size", "")),
            "cart": _plain(self.cart) if self.present else {"items": [], "reserve": False}, "call": dict(self.call) if self.call else None,
            "checkout": dict(self.checkout) if self.checkout else None,
            "requests": [{**r, "product": dict(r["product"]), "age_s": round(max(0.0, now - r["at"]), 1),
                          "open": r["answered_by"] is None} for r in self.requests],
            "suggestions": [dict(s) for s in self.suggestions], "suggestion_status": self.suggestion_status,
            "push": dict(self.push) if self.push else None, "accepted": [dict(a) for a in self.accepted],
            "profile": self.profile, "member_status": self.member_status,
            "timeline": list(self.timeline), "listener_problem": self.listener_problem,
            "reservations": [dict(r) for r in self.reservations], "news": list(self.news), "now": now,
        }


def _plain(value):
    """A JSON-safe deep copy of plain data (dicts, lists, str, numbers)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _suggestion_for_staff(item: dict, push: dict) -> dict:
    """A pushed item as the console shows it: the picture as a console URL, never a file path."""
    image = Path(str(item.get("image") or "")).name
    return {"sku": str(item.get("sku", "")), "name": str(item.get("name", "")), "price": str(item.get("price", "")),
            "colour": str(item.get("colour", "")), "size": str(item.get("size", "")),
            "in_stock": item.get("in_stock"), "image": f"/staff/images/{image}" if image else "",
            "push_id": push["push_id"], "by": push["by"], "taken": False}


def suggestion_items(catalogue, skus: list[str], her_size: str, images_dir: Path, now: float) -> list[dict]:
    """The `suggestions.pushed` items for `skus` (duplicates dropped), from the SQLite catalogue.

    The size is hers when the product comes in it (a dress's M for a top), the
    only size of a one-size product, else "" (shoes for a dress size): then
    `in_stock` is None (unknown). The colour is the first one available in
    that size (else the first colour). Raises the catalogue's UnknownProduct."""
    from mirror.storage.catalogue import UnknownProduct
    out, seen = [], set()
    for sku in skus:
        if sku.casefold() in seen:
            continue
        seen.add(sku.casefold())
        p = catalogue.find(sku)
        if p is None:
            raise UnknownProduct(f"no product with SKU {sku!r} in the catalogue")
        size = next((s for s in p.sizes if her_size and s.casefold() == her_size.casefold()), "")
        if not size and len(p.sizes) == 1:
            size = p.sizes[0]
        levels = catalogue.stock_levels(p.sku, now)
        in_stock: bool | None = None
        colour = p.colours[0].name if p.colours else ""
        if size:
            available = [lv for lv in levels if lv["size"].casefold() == size.casefold() and lv["available"] > 0]
            in_stock = bool(available)
            if available:
                colour = available[0]["colour"]
        image = ""
        if p.image and (images_dir / p.image).is_file():
            image = str((images_dir / p.image).resolve())
        out.append({"sku": p.sku, "name": p.name, "price": p.price, "image": image, "colour": colour,
                    "size": size, "in_stock": in_stock})
    return out


def reservation_list(catalogue, now: float | None = None) -> list[dict]:
    """What the console lists: every hold still held (also one whose time is up but not yet marked),
    then the last ones closed, newest first; each with its product's name."""
    now = time.time() if now is None else now
    held = catalogue.holds(state="held", limit=RESERVATIONS_SHOWN)
    closed = [h for h in catalogue.holds(state=None, limit=RESERVATIONS_SHOWN) if h.state != "held"][:20]
    out = []
    for h in held + closed:
        p = catalogue.find(h.sku)
        state = "expired" if h.state == "held" and h.expires_at <= now else h.state
        out.append({"id": h.id, "sku": h.sku, "name": p.name if p else h.sku, "colour": h.colour, "size": h.size,
                    "qty": h.qty, "source": h.source or "script", "for": h.for_name, "member": bool(h.member_id),
                    "created_at": h.created_at, "expires_at": h.expires_at, "state": state})
    return out


class StaffDb:
    """The staff users, the catalogue and the audit, on one worker thread that owns the connections.

    Opened lazily, so a database problem is a 503 on the console, not a kiosk that will not start."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="staff-db")
        self._users = None
        self._catalogue = None
        self._members = None

    async def run(self, fn: Callable[..., Any], *args) -> Any:
        """fn(db, *args) on the worker thread; `db` is this object."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, self, *args)

    @property
    def users(self):
        if self._users is None:
            from mirror.storage.staff import StaffUsers
            self._users = StaffUsers(self.path)
        return self._users

    @property
    def catalogue(self):
        if self._catalogue is None:
            from mirror.storage.catalogue import Catalogue
            self._catalogue = Catalogue(self.path)
        return self._catalogue

    @property
    def members(self):
        if self._members is None:
            from mirror.storage.members import Members
            self._members = Members(self.path)
        return self._members

    def submit(self, fn: Callable[..., Any], *args, done: Callable[[Any], None] | None = None) -> None:
        """fn(db, *args) on the worker thread from any thread, without waiting; `done(result)` after it,
        on that thread. A failure is logged (the kiosk keeps running)."""
        def job():
            try:
                result = fn(self, *args)
            except Exception as e:
                log.error("staff database job %s failed: %s", getattr(fn, "__name__", fn), e)
                return
            if done is not None:
                done(result)
        try:
            self.pool.submit(job)
        except RuntimeError:                    # shut down
            pass

    def close(self) -> None:
        def _close(_db):
            for conn in (self._users, self._catalogue, self._members):
                if conn is not None:
                    conn.close()
            self._users = self._catalogue = self._members = None
        if self._users is not None or self._catalogue is not None or self._members is not None:
            try:
                self.pool.submit(_close, self).result(5)
            except Exception:
                log.exception("closing the staff database")
        self.pool.shutdown(wait=False)


class StaffFeature(Feature):
    name = "staff"

    def __init__(self, cfg: Config, bus: EventBus, *, images_dir: Path | None = None):
        self.bus = bus
        self.cfg = cfg.staff
        self.hold_s = cfg.checkout.reservation_hold_h * 3600.0
        self._next_upkeep = 0.0
        self._next_users_check = 0.0
        self._her_hold: int | None = None          # the stock hold her "Put one aside" made this session
        self.db = StaffDb(cfg.orders_path())
        self.images_dir = Path(images_dir) if images_dir is not None else IMAGES_DIR
        self.lock = threading.Lock()
        self.card = MirrorCard()
        self.sessions = Sessions(self.cfg.session_ttl_min * 60.0)
        self.limiter = LoginLimiter()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.clients: dict[int, Any] = {}          # websocket clients (routes.Client), on the loop only
        self.version = 0                           # bumped on every change of the card
        from mirror.staff.routes import StaffRoutes
        self.web = StaffRoutes(self)
        self.router = self.web.router()
        from mirror.staff.commands import StaffCommands
        self.control = StaffCommands(self)         # control-socket commands: staff.push, staff.shown
        for name in _EVENTS + ("call.*", "checkout.*", "web.unavailable"):
            bus.subscribe(name, self._on_event)

    # --- origins ---------------------------------------------------------------------
    def origins(self, scheme: str) -> set[str]:
        return allowed_origins(scheme, self.cfg.host, self.cfg.port, self.cfg.allowed_origins)

    # --- lifecycle -------------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self.loop = loop
        self._upkeep()

    def before_frame(self, now: float) -> None:
        """Each frame (a look at at most 50 requests): those nobody answered for escalate_s alert again;
        twice a minute: holds whose time is up."""
        t = time.time()
        with self.lock:
            due = self.card.escalate(t, self.cfg.escalate_s)
        for r in due:
            log.warning("staff console: request %s unanswered for %.0f s, alerting again", r["id"],
                        t - r["at"])
            self.bus.publish("staff.escalated", request_id=r["id"], times=r["alerts"] - 1)
        if due:
            self.changed()
        if t >= self._next_upkeep:
            self._next_upkeep = t + UPKEEP_S
            self._upkeep()
        if t >= self._next_users_check and len(self.sessions):
            self._next_users_check = t + USERS_CHECK_S
            self.db.submit(lambda db: {u["name"] for u in db.users.list_users()}, done=self._users_now)

    def _users_now(self, users: set[str]) -> None:
        """(database thread) The staff users as they are: a user removed by `mirror
        staff remove-user` (another process) is logged out, websockets included."""
        loop = self.loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._log_out_removed, users)
            except RuntimeError:                    # the loop closed meanwhile
                pass

    def _log_out_removed(self, users: set[str]) -> None:
        gone = self.sessions.keep_only(users)
        for who in sorted({s.who for s in gone}):
            log.warning("staff console: %s is no longer a staff user; their sessions are ended", who)
        if gone:
            self.web.wake_all()                     # their websockets see no session and close (4001)

    def _upkeep(self) -> None:
        def job(db) -> list[dict]:
            db.catalogue.expire(time.time())
            return reservation_list(db.catalogue)
        self.db.submit(job, done=self._set_reservations)

    def _set_reservations(self, rows: list[dict]) -> None:
        with self.lock:
            changed = rows != self.card.reservations
            self.card.reservations = rows
        if changed:
            self.changed()

    def stop(self) -> None:
        loop, self.loop = self.loop, None
        if loop is not None and loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(self.web.close_all(1001, "the mirror is shutting down"),
                                                 loop).result(5)
            except Exception:
                log.exception("closing the staff websockets")
        self.db.close()

    def routes(self) -> dict:
        return {"staff": self.router}

    def commands(self) -> dict:
        return self.control.commands()

    def status(self) -> dict:
        return {"staff_clients": len(self.clients)}

    # --- the card ------------------------------------------------------------------------
    def _on_event(self, ev: Event) -> None:
        with self.lock:
            changed = self.card.handle(ev.name, ev.data, time.time())
            if ev.name in ("session.started", "session.ended"):
                self._her_hold = None
        if changed:
            self.changed()
        d = ev.data
        if ev.name == "reserve.requested" and d.get("source") == "mirror":
            if d.get("on", True):
                self._hold_for_her()
            else:
                self._release_for_her()
        elif ev.name == "member.consent" and d.get("granted"):
            self._share_profile(d["member_id"], d.get("first_name", ""))
        elif ev.name == "look.saved":
            with self.lock:
                member = self.card.profile["member_id"] if self.card.profile else None
                item = dict(self.card.item)
            if member:
                self.db.submit(lambda db: db.members.add_look(member, d["sku"], str(item.get("name", "")),
                                                              d["colour"]),
                               done=lambda _: self._share_profile(member, ""))

    # --- her reservation and her profile (database work off the main thread) ----------------
    def _hold_for_her(self) -> None:
        with self.lock:
            it, session = dict(self.card.item), self.card.session_id
            profile = self.card.profile
        if not it:
            return
        sku, colour, size = str(it.get("sku", "")), str(it.get("colour", "")), str(it.get("size", ""))
        member, name = (profile["member_id"], profile["first_name"]) if profile else ("", "")

        def job(db):
            from mirror.storage.catalogue import CatalogueError, OutOfStock
            try:
                h = db.catalogue.reserve(sku, colour, size, hold_s=self.hold_s, source="mirror", member_id=member,
                                         for_name=name, ref=f"session:{session}")
            except OutOfStock:
                return None, f"Size {size} in {colour} is not in stock here: ask a member of staff"
            except CatalogueError:
                return None, "This item cannot be put aside here: ask a member of staff"
            db.users.audit("shopper", "reservation.made", {"hold_id": h.id, "sku": h.sku, "session_id": session})
            return h, ""

        def done(result):
            h, why = result
            if h is None:
                self.bus.publish("reservation.failed", reason=why)
                return
            with self.lock:
                if self.card.session_id == session:
                    self._her_hold = h.id
            self.bus.publish("reservation.made", hold_id=h.id, sku=h.sku, name=str(it.get("name", "")) or h.sku,
                             colour=h.colour, size=h.size, expires_at=h.expires_at)
            self._upkeep()
        self.db.submit(job, done=done)

    def _release_for_her(self) -> None:
        with self.lock:
            hold, self._her_hold = self._her_hold, None
        if hold is not None:
            self.db.submit(lambda db: db.catalogue.release(hold), done=lambda _: self._upkeep())

    def _share_profile(self, member_id: str, first_name: str) -> None:
        """After her yes: her member card on the console, for as long as she stays."""
        with self.lock:
            session = self.card.session_id

        def job(db) -> dict:
            if first_name or not db.members.exists(member_id):
                db.members.seen(member_id, first_name)
            return db.members.profile(member_id, db.catalogue)

        def done(profile: dict) -> None:
            with self.lock:
                if self.card.session_id != session or not self.card.present or self.card.member_status != "shared":
                    return                      # she left (or said no) while it was read: show nothing
                self.card.profile = profile
            self.changed()
        self.db.submit(job, done=done)

    def changed(self) -> None:
        """The card changed (any thread): every connected console gets the new state."""
        with self.lock:
            self.version += 1
        loop = self.loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self.web.wake_all)
            except RuntimeError:                    # the loop closed meanwhile
                pass

    def state(self) -> dict:
        with self.lock:
            return self.card.snapshot(time.time())

    # --- staff actions (on the loop) ----------------------------------------------------------
    async def push(self, who: str, skus: list[str], session_id: str | None, deadline: float | None = None) -> dict:
        """`deadline` (monotonic): a control-socket client stops waiting then; a push that only
        gets the database after it (a long catalogue import) is not made."""
        t_sent = time.monotonic()
        with self.lock:
            present, current, her_size = self.card.present, self.card.session_id, self.card.size
        if session_id is not None and session_id != current:
            raise CardError(409, "that shopper has left the mirror (stale session id); reload the console")
        if not present:
            raise CardError(409, "nobody is at the mirror: suggestions go to a shopper")
        push_id = secrets.token_hex(6)

        def build(db) -> list[dict]:            # on the database thread: the items, then the audit entry
            if deadline is not None and time.monotonic() > deadline:
                raise CardError(504, "the push came too late: its sender had stopped waiting; nothing pushed")
            items = suggestion_items(db.catalogue, skus, her_size, self.images_dir, time.time())
            db.users.audit(who, "staff.push_suggestions", {"skus": [i["sku"] for i in items], "push_id": push_id,
                                                            "session_id": current})
            return items
        items = await self.db.run(build)
        try:
            self.bus.publish("suggestions.pushed", items=items, by=who, push_id=push_id, t_sent=t_sent)
        except ValueError as e:                 # the mirror side of the carousel is not there
            raise CardError(503, f"the mirror cannot show suggestions: {e}") from None
        return {"ok": True, "push_id": push_id, "items": [i["sku"] for i in items], "session_id": current}

    async def reply(self, who: str, request_id: str, text: str) -> dict:
        with self.lock:
            r = self.card.find_request(request_id)
            if r is None:
                raise CardError(404, f"no open request {request_id[:40]!r} (she may have left the mirror)")
            if r["answered_by"] is not None:
                raise CardError(409, f"{r['answered_by']} already answered this request")
            r.update(answered_by=who, reply=text, answered_at=time.time())   # the first to answer takes it
        self.bus.publish("staff.replied", request_id=request_id, text=text, by=who)
        self.changed()
        await self.audit(who, "staff.reply", {"request_id": request_id, "text": text})
        return {"ok": True, "request_id": request_id}

    async def audit(self, who: str, action: str, detail: dict) -> None:
        try:
            await self.db.run(lambda db: db.users.audit(who, action, detail))
        except Exception:
            log.exception("could not write the audit entry %s by %s", action, who)

    # --- reservations, members and the web store (on the loop) ------------------------------
    async def reserve(self, who: str, sku: str, colour: str, size: str) -> dict:
        """Staff put one aside (for the shopper at the mirror if she shared her profile)."""
        with self.lock:
            profile = self.card.profile
        member, name = (profile["member_id"], profile["first_name"]) if profile else ("", "")

        def job(db) -> dict:
            from mirror.storage.catalogue import OutOfStock
            try:
                h = db.catalogue.reserve(sku, colour, size, hold_s=self.hold_s, source="staff", member_id=member,
                                         for_name=name, ref=f"staff:{who}")
            except OutOfStock as e:
                raise CardError(409, str(e)) from None
            db.users.audit(who, "staff.reserve", {"hold_id": h.id, "sku": h.sku, "colour": h.colour,
                                                  "size": h.size})
            return h.as_dict()
        hold = await self.db.run(job)
        self._upkeep()
        return {"ok": True, "reservation": hold}

    async def close_hold(self, who: str, hold_id: int, how: str) -> dict:
        """Staff mark a reservation collected (it leaves the stock) or released (back on the shelf)."""
        def job(db) -> dict:
            from mirror.storage.catalogue import HoldError
            try:
                h = db.catalogue.collect(hold_id) if how == "collect" else db.catalogue.release(hold_id)
            except HoldError as e:
                raise CardError(404 if "no stock hold" in str(e) else 409, str(e)) from None
            db.users.audit(who, f"staff.reservation_{'collected' if how == 'collect' else 'released'}",
                           {"hold_id": hold_id, "sku": h.sku})
            return h.as_dict()
        hold = await self.db.run(job)
        self._upkeep()
        return {"ok": True, "reservation": hold}

    def _shared_member(self, member_id: str) -> None:
        with self.lock:
            shown = self.card.profile["member_id"] if self.card.profile else None
        if shown != member_id:
            raise CardError(409, "that member's profile is not shared right now (she shares it at the mirror)")

    async def note(self, who: str, member_id: str, text: str) -> dict:
        self._shared_member(member_id)

        def job(db) -> dict:
            n = db.members.add_note(member_id, who, text)
            db.users.audit(who, "staff.member_note", {"member_id": member_id})
            return n
        note = await self.db.run(job)
        self._share_profile(member_id, "")
        return {"ok": True, "note": note}

    async def forget(self, who: str, member_id: str) -> dict:
        """The right to erasure: everything about her goes; the audit keeps that it happened and who did it."""
        from mirror.storage.members import UnknownMember, check_member_id

        def job(db) -> dict:
            try:
                counts = db.members.forget(check_member_id(member_id))
            except UnknownMember as e:
                raise CardError(404, str(e)) from None
            db.users.audit(who, "staff.member_forgotten", {"member_id": member_id, **counts})
            return counts
        counts = await self.db.run(job)
        with self.lock:
            if self.card.profile and self.card.profile["member_id"] == member_id:
                self.card.profile = None
                self.card.member_status = "declined"
        self.changed()
        self._upkeep()
        log.info("staff console: %s forgot a member (%s)", who, counts)
        return {"ok": True, "forgotten": counts}

    def _news(self, text: str) -> None:
        with self.lock:
            self.card.news.appendleft({"at": time.time(), "text": text})
        self.changed()

    async def webstore_reserve(self, member_id: str, first_name: str, sku: str, colour: str, size: str) -> dict:
        """The web store puts one aside for a member before she comes in."""
        def job(db) -> tuple[dict, str]:
            from mirror.storage.catalogue import OutOfStock
            m = db.members.seen(member_id, first_name)
            try:
                h = db.catalogue.reserve(sku, colour, size, hold_s=self.hold_s, source="webstore",
                                         member_id=member_id, for_name=m["first_name"], ref="webstore")
            except OutOfStock as e:
                raise CardError(409, str(e)) from None
            name = db.catalogue.get(h.sku).name
            db.users.audit("webstore", "webstore.reserve", {"hold_id": h.id, "member_id": member_id, "sku": h.sku})
            return h.as_dict(), f"{m['first_name'] or 'A member'} reserved the {name} in {h.size} ({h.colour}) " \
                                f"for today"
        hold, text = await self.db.run(job)
        self._news(text)
        self._upkeep()
        return {"ok": True, "reservation": {k: hold[k] for k in ("id", "sku", "colour", "size", "expires_at")}}

    async def webstore_wishlist(self, member_id: str, first_name: str, items: list[tuple[str, str, str]]) -> dict:
        def job(db) -> tuple[int, str]:
            from mirror.storage.catalogue import UnknownProduct
            for sku, _, _ in items:
                if db.catalogue.find(sku) is None:
                    raise UnknownProduct(f"no product with SKU {sku!r} in the catalogue")
            m = db.members.seen(member_id, first_name)
            added = db.members.add_wishlist(member_id, [(db.catalogue.get(s).sku, c, z) for s, c, z in items])
            db.users.audit("webstore", "webstore.wishlist", {"member_id": member_id, "added": added})
            names = ", ".join(db.catalogue.get(s).name for s, _, _ in items[:3]) + ("…" if len(items) > 3 else "")
            return added, f"{m['first_name'] or 'A member'} added {names} to her wishlist"
        added, text = await self.db.run(job)
        if added:
            self._news(text)
        return {"ok": True, "added": added}
