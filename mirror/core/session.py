"""The shopper's session: a pure state machine driven by bus events.

It holds what the shopper is trying on and in which colour, and what the screen
should say. It does no I/O: `handle(event)` updates the state and returns any
follow-up notifications (name, data) for the kiosk to publish. When the shopper
leaves, everything about her is wiped.
"""

from __future__ import annotations

import colorsys
import secrets
from dataclasses import dataclass, field

from mirror.core.actions import MESSAGES
from mirror.core.bus import Event
from mirror.core.catalog import Catalog
from mirror.core.controls import Control, control_at, visible_controls
from mirror.core.colors import hue_to_bgr, nearest_name

CATALOG_STEP_DEG = 60.0    # in catalogue hue mode, one colour per sixth of a circle



@dataclass
class Session:
    catalog: Catalog
    actions: dict[str, str]                  # gesture or motion name -> action
    hue_mode: str = "wheel"
    degrees_per_turn: float = 360.0
    start_sku: str = ""
    present: bool = False
    product_index: int = 0
    colour_index: int = 0
    hue: float | None = None                 # set while a free hue from the wheel is shown
    message: str = ""
    message_t: float = -1e9
    last_activity_t: float = 0.0
    debug: bool = False
    controls_on: bool = True                 # display.controls
    circling_until: float = -1e9
    id: str = ""                             # a fresh random id per shopper; join links are bound to it
    knocking: str = ""                       # name of a friend waiting to be let in
    in_call: str = ""                        # name of the friend in the call
    # The cart (see cart()): chosen size, accepted suggestions, "put one aside".
    size_index: int = 0
    accepted: list[dict] = field(default_factory=list)
    reserve: bool = False
    _step_acc: float = 0.0
    log: list[str] = field(default_factory=list)   # recent action names, for tests and stats

    def __post_init__(self):
        self.reset()

    # --- derived state -------------------------------------------------
    @property
    def product(self):
        return self.catalog.products[self.product_index]

    @property
    def color_bgr(self) -> tuple[int, int, int]:
        if self.hue is not None:
            return hue_to_bgr(self.hue)
        return self.product.colours[self.colour_index].bgr

    @property
    def color_name(self) -> str:
        if self.hue is not None:
            return nearest_name(self.color_bgr).capitalize()
        return self.product.colours[self.colour_index].name

    @property
    def ring_hue(self) -> float:
        if self.hue is not None:
            return self.hue
        b, g, r = self.color_bgr
        return colorsys.rgb_to_hsv(r / 255, g / 255, b / 255)[0] * 360.0

    # --- transitions ---------------------------------------------------
    def reset(self) -> None:
        """A new shopper: the default product and colour, nothing remembered."""
        self.product_index = 0
        if self.start_sku:
            for i, p in enumerate(self.catalog.products):
                if p.sku == self.start_sku:
                    self.product_index = i
        self.colour_index = 0
        self.hue = None
        self.message = ""
        self.message_t = -1e9
        self._step_acc = 0.0
        self.log = []
        self.id = secrets.token_hex(8)
        self.knocking = ""
        self.in_call = ""
        self.size_index = len(self.product.sizes) // 2
        self.accepted = []
        self.reserve = False

    def controls(self) -> list[Control]:
        """The on-screen controls a held-still hand can press right now."""
        if not self.controls_on:
            return []
        return visible_controls(self.present, self.knocking, self.in_call)

    def cart(self) -> dict:
        """What a tap would buy: the garment in its colour and size, plus the
        accepted suggestions. A plain dict, equal for equal choices."""
        p = self.product
        colour = p.colours[self.colour_index]
        if self.hue is not None:           # a free hue: the nearest colour it is sold in
            def dist(c):
                b, g, r = c.bgr
                h = colorsys.rgb_to_hsv(r / 255, g / 255, b / 255)[0] * 360.0
                return min(abs(h - self.hue), 360.0 - abs(h - self.hue))
            colour = min(p.colours, key=dist)
        size = p.sizes[self.size_index] if self.size_index < len(p.sizes) else ""
        items = [{"sku": p.sku, "name": p.name, "colour": colour.name, "size": size, "price": p.price, "qty": 1}]
        items += [dict(a) for a in self.accepted]
        return {"items": items, "reserve": self.reserve}

    def say(self, text: str, t: float) -> None:
        self.message, self.message_t = text, t

    @classmethod
    def from_config(cls, cfg) -> "Session":
        """The session the config describes (a mirror.core.config.Config)."""
        from mirror.core.catalog import load_catalog
        s = cls(load_catalog(cfg.catalog_path()), cfg.actions.model_dump(), cfg.gestures.hue_mode,
                cfg.gestures.degrees_per_turn, cfg.catalog.product)
        s.debug = cfg.display.show_fps
        s.controls_on = cfg.display.controls
        return s

    def attach(self, bus) -> None:
        """Drive this session from every event on `bus` (a mirror.core.bus.EventBus)
        and publish what it answers."""
        def on_event(ev: Event) -> None:
            for name, data in self.handle(ev):
                bus.publish(name, **data)
        bus.subscribe("*", on_event)

    def announce(self) -> list[tuple[str, dict]]:
        """The state a feature started after this session needs: the cart."""
        return [("cart.changed", {"cart": self.cart(), "session_id": self.id})]

    def handle(self, ev: Event) -> list[tuple[str, dict]]:
        before = (self.id, self.cart())
        out = self._handle(ev)
        if (self.id, self.cart()) != before:
            out.append(("cart.changed", {"cart": self.cart(), "session_id": self.id}))
        return out

    def _handle(self, ev: Event) -> list[tuple[str, dict]]:
        t = ev.ts
        out: list[tuple[str, dict]] = []
        if ev.name == "presence.changed":
            if ev.data.get("present") and not self.present:
                self.present = True
                self.last_activity_t = t
                out.append(("session.started", {"id": self.id}))
            elif not ev.data.get("present") and self.present:
                self.present = False
                old = self.id
                self.reset()
                out.append(("session.ended", {"id": old, "wiped": True}))
        elif ev.name == "call.knock":
            self.knocking = ev.data["name"]           # the compositor shows the card
        elif ev.name == "call.admitted":
            self.knocking, self.in_call = "", ev.data["name"]
        elif ev.name == "call.ended":
            if self.in_call or self.knocking:
                self.say(f"Call with {self.in_call or self.knocking} ended", t)
            self.knocking = self.in_call = ""
        elif ev.name == "gesture.fired":
            action = self.actions.get(ev.data["gesture"], "none")
            out += self.do(action, t, source=ev.data["gesture"])
        elif ev.name == "motion.swipe":
            action = self.actions.get(f"swipe_{ev.data['direction']}", "none")
            out += self.do(action, t, source=f"swipe_{ev.data['direction']}")
        elif ev.name == "cursor.dwell":
            ctl = control_at(self.controls(), float(ev.data["x"]), float(ev.data["y"]))
            # the press names the control it was held on; if the screen has
            # changed under the hand since, it presses nothing
            if ctl is not None and (ev.data.get("control") or ctl.id) == ctl.id:
                out += self.do(ctl.action, t, source=f"control:{ctl.id}")
        elif ev.name == "motion.circle":
            self.turn(float(ev.data["delta_deg"]), t)
        elif ev.name == "action.requested":
            # a store tool, a script or a keyboard: not the shopper herself
            out += self.do(ev.data["action"], t, source=ev.data.get("source", "script"), by_shopper=False)
        elif ev.name == "product.select":
            for i, p in enumerate(self.catalog.products):
                if p.sku == ev.data["sku"]:
                    self.product_index, self.colour_index, self.hue = i, 0, None
                    self.size_index = len(p.sizes) // 2
                    self.say(p.name, t)
        elif ev.name == "size.select":
            if ev.data.get("size") in self.product.sizes:
                self.size_index = self.product.sizes.index(ev.data["size"])
                self.say(f"Size {ev.data['size']}", t)
        elif ev.name == "suggestion.accepted":
            item = {k: str(ev.data.get(k, "")) for k in ("sku", "name", "colour", "size", "price")}
            if item["sku"] and all(a["sku"] != item["sku"] for a in self.accepted):
                self.accepted.append({**item, "qty": 1})
                self.say(f"Added {item['name'] or item['sku']}", t)
        elif ev.name == "reserve.requested":
            self.reserve = bool(ev.data.get("on", True))
            if self.reserve:
                self.say("We will put one aside in your size", t)
        return out

    def turn(self, delta_deg: float, t: float) -> None:
        """A circling finger: positive = clockwise as the shopper sees it."""
        self.last_activity_t = t
        self.circling_until = t + 0.8
        if self.hue_mode == "wheel":
            base = self.ring_hue if self.hue is None else self.hue
            self.hue = (base + delta_deg * 360.0 / self.degrees_per_turn) % 360.0
            return
        self._step_acc += delta_deg
        while abs(self._step_acc) >= CATALOG_STEP_DEG:
            step = 1 if self._step_acc > 0 else -1
            self._step_acc -= step * CATALOG_STEP_DEG
            self.step_colour(step)

    def step_colour(self, step: int) -> None:
        n = len(self.product.colours)
        self.colour_index = (self.colour_index + step) % n
        self.hue = None

    def do(self, action: str, t: float, source: str = "", by_shopper: bool = True) -> list[tuple[str, dict]]:
        if action == "none":
            return []
        if self.knocking and action in ("confirm", "cancel") and not by_shopper:
            return []        # who sees her is her choice alone: her gesture or her button, never a command
        self.last_activity_t = t
        self.log.append(action)
        out: list[tuple[str, dict]] = [("action.done", {"action": action, "source": source})]
        if action == "next_color":
            self.step_colour(+1)
            self.say(self.color_name, t)
        elif action == "prev_color":
            self.step_colour(-1)
            self.say(self.color_name, t)
        elif action == "toggle_debug":
            self.debug = not self.debug
        elif action == "call_staff":
            out.append(("staff.called", {"product": self.product.sku}))
        elif self.knocking and action in ("confirm", "cancel"):
            # the "wants to join" card is up: thumbs-up lets the friend in, a cancel declines
            out.append(("call.admit" if action == "confirm" else "call.decline", {"name": self.knocking}))
            self.say(f"Letting {self.knocking} in" if action == "confirm" else f"Declined {self.knocking}", t)
            if action == "cancel":
                self.knocking = ""
            return out
        elif action == "hang_up" or (action == "call_friend" and self.in_call):
            out.append(("call.hangup", {"reason": "shopper hung up"}))
            self.say("Call ended", t)
            return out
        elif action == "call_friend":
            out.append(("call.requested", {"session": self.id}))
            self.say("Scan the code to invite a friend", t)
        elif action == "confirm":
            out.append(("look.saved", {"sku": self.product.sku, "colour": self.color_name}))
        text = MESSAGES.get(action)
        if text:
            self.say(text, t)
        return out
