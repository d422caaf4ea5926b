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
MAX_SUGGESTIONS = 8        # a staff push of more cards keeps the first eight
CONSENT_S = 15.0           # the member-profile question waits this long; no answer is a no



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
    # Staff suggestions (see carousel()): the pushed cards, the one shown, and the push they came in.
    suggestions: list[dict] = field(default_factory=list)
    suggestion_index: int = 0
    suggestions_push_id: str = ""
    suggestions_seen: bool = False           # a frame has shown this push's card: she can answer it
    picking_size: bool = False               # the size picker replaces the buttons
    # The member-profile question: {"member_id", "first_name", "until"} while it is asked.
    consent: dict | None = None
    consent_asked: set = field(default_factory=set)   # member ids asked this session (asked once)
    member_name: str = ""                    # her first name, once she said yes (all the mirror shows of her)
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
        self.suggestions = []
        self.suggestion_index = 0
        self.suggestions_push_id = ""
        self.suggestions_seen = False
        self.picking_size = False
        self.consent = None
        self.consent_asked = set()
        self.member_name = ""

    def controls(self) -> list[Control]:
        """The on-screen controls a held-still hand can press right now."""
        if not self.controls_on:
            return []
        p = self.product
        return visible_controls(self.present, self.knocking, self.in_call, asking_consent=self.consent is not None,
                                sizes=p.sizes if self.picking_size else None,
                                size=p.sizes[self.size_index] if self.size_index < len(p.sizes) else "")

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

    @property
    def carousel_up(self) -> bool:
        """The suggestions carousel is on screen: there are cards and no other
        question is up (a friend's knock or the profile question own thumbs-up
        and fist; the size picker owns the screen)."""
        return bool(self.suggestions) and not self.knocking and self.consent is None and not self.picking_size

    def carousel(self) -> dict | None:
        """What the suggestions overlay draws: {"cards": [card dicts], "index",
        "push_id"}, or None while the carousel is not up."""
        if not self.carousel_up:
            return None
        return {"cards": [dict(c) for c in self.suggestions], "index": self.suggestion_index,
                "push_id": self.suggestions_push_id}

    def say(self, text: str, t: float) -> None:
        self.message, self.message_t = text, t

    @classmethod
    def from_config(cls, cfg, catalog: Catalog | None = None) -> "Session":
        """The session the config describes (a mirror.core.config.Config), on
        `catalog` (the app's choice, see mirror.app.catalog_source) or else the
        configured TOML file."""
        if catalog is None:
            from mirror.core.catalog import load_catalog
            catalog = load_catalog(cfg.catalog_path())
        s = cls(catalog, cfg.actions.model_dump(), cfg.gestures.hue_mode,
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
            if ev.data["gesture"] == "open_palm" and self.carousel_up:
                # the carousel claims the open palm itself, whatever [actions] maps it to
                # (help by default); the Help button still asks for help. Not before
                # she could see the cards: that palm was meant for something else.
                if self.suggestions_seen:
                    out += self.dismiss_suggestions(t)
            else:
                action = self.actions.get(ev.data["gesture"], "none")
                out += self.do(action, t, source=ev.data["gesture"])
        elif ev.name == "motion.swipe":
            if self.carousel_up:             # a swipe goes through the cards instead of the colours
                self.swipe_suggestions(ev.data["direction"], t)
            else:
                action = self.actions.get(f"swipe_{ev.data['direction']}", "none")
                out += self.do(action, t, source=f"swipe_{ev.data['direction']}")
        elif ev.name == "cursor.dwell":
            ctl = control_at(self.controls(), float(ev.data["x"]), float(ev.data["y"]))
            # the press names the control it was held on; if the screen has
            # changed under the hand since, it presses nothing
            if ctl is not None and (ev.data.get("control") or ctl.id) == ctl.id:
                if ctl.action == "ask_size":
                    out += self.ask_size(ctl.arg, t)
                elif ctl.action == "close_sizes":
                    self.picking_size = False
                    self.last_activity_t = t
                else:
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
            self.accept(ev.data, t)
        elif ev.name == "suggestions.pushed":
            self.push_suggestions(ev.data["items"], ev.data["push_id"])
        elif ev.name == "suggestions.shown":
            if ev.data["push_id"] == self.suggestions_push_id:
                self.suggestions_seen = True
        elif ev.name == "staff.replied":
            self.say(ev.data["text"], t)                  # a staff member's answer from the console
        elif ev.name == "reserve.requested":
            self.reserve = bool(ev.data.get("on", True))
            if self.reserve:
                self.say("We will put one aside in your size", t)
        elif ev.name == "reservation.made":
            self.say(f"Put aside for you: {ev.data['name']}, {ev.data['colour']}, size {ev.data['size']}", t)
        elif ev.name == "reservation.failed":
            self.reserve = False
            self.say(ev.data["reason"], t)
        elif ev.name == "member.tapped":
            mid = ev.data["member_id"]
            if self.present and mid not in self.consent_asked and not self.member_name:
                self.consent_asked.add(mid)
                self.consent = {"member_id": mid, "first_name": ev.data.get("first_name", ""),
                                "until": t + CONSENT_S}
                self.picking_size = False
        return out

    def tick(self, t: float) -> list[tuple[str, dict]]:
        """Time passing with nothing else happening (the app calls it every frame): a question
        nobody answered in time is a no."""
        if self.consent is not None and t > self.consent["until"]:
            return self.answer_consent(False, t)
        return []

    def answer_consent(self, yes: bool, t: float) -> list[tuple[str, dict]]:
        """Her answer to the profile question; only a yes shares anything."""
        c, self.consent = self.consent, None
        if c is None:
            return []
        if yes:
            self.member_name = c["first_name"] or "there"
            self.say(f"Thanks, {self.member_name}: our staff can see your profile", t)
        else:
            self.say("Your profile stays private", t)
        return [("member.consent", {"member_id": c["member_id"], "first_name": c["first_name"], "granted": yes})]

    def ask_size(self, size: str, t: float) -> list[tuple[str, dict]]:
        """A size picked on the mirror: it becomes her size and staff are asked to bring it, in this colour."""
        self.picking_size = False
        self.last_activity_t = t
        p = self.product
        if size not in p.sizes:
            return []
        self.size_index = p.sizes.index(size)
        self.log.append("ask_size")
        self.say(f"Asked for size {size} in {self.color_name}: a member of staff will bring it", t)
        return [("action.done", {"action": "ask_size", "source": f"control:size:{size}"}),
                ("staff.called", {"product": p.sku, "kind": "size", "size": size, "colour": self.color_name})]

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

    def accept(self, data: dict, t: float) -> bool:
        """Put a suggested item in the cart (once per SKU) and say so; False if
        it has no SKU or is already there. The one place a suggestion enters
        the cart: `suggestion.accepted` and the carousel's thumbs-up."""
        item = {k: str(data.get(k) or "") for k in ("sku", "name", "colour", "size", "price")}
        if not item["sku"] or any(a["sku"] == item["sku"] for a in self.accepted):
            return False
        self.accepted.append({**item, "qty": 1})
        self.say(f"Added {item['name'] or item['sku']}", t)
        return True

    def push_suggestions(self, items, push_id: str) -> None:
        """A staff push replaces the carousel: cards with a SKU, each SKU once, at
        most MAX_SUGGESTIONS. Nothing is said: the card itself appears."""
        cards: list[dict] = []
        for it in items if isinstance(items, list) else []:
            sku = str(it.get("sku") or "") if isinstance(it, dict) else ""
            if not sku or any(c["sku"] == sku for c in cards):
                continue
            stock = it.get("in_stock")
            cards.append({"sku": sku, **{k: str(it.get(k) or "") for k in ("name", "price", "image", "colour", "size")},
                          "in_stock": stock if isinstance(stock, bool) else None})
            if len(cards) == MAX_SUGGESTIONS:
                break
        self.suggestions, self.suggestion_index = cards, 0
        self.suggestions_push_id = str(push_id) if cards else ""
        self.suggestions_seen = False

    def swipe_suggestions(self, direction: str, t: float) -> None:
        """Step through the cards the way the swipe steps through colours
        ([actions] swipe_left/right), round and round."""
        mapped = self.actions.get(f"swipe_{direction}")
        step = -1 if mapped == "prev_color" else 1 if mapped == "next_color" else (1 if direction == "right" else -1)
        self.suggestion_index = (self.suggestion_index + step) % len(self.suggestions)
        self.last_activity_t = t

    def take_suggestion(self, t: float, by: str) -> list[tuple[str, dict]]:
        """Thumbs-up on the carousel: the current card goes into the cart (as
        `suggestion.accepted` would put it) and leaves the carousel."""
        card = self.suggestions.pop(self.suggestion_index)
        if self.suggestion_index >= len(self.suggestions):
            self.suggestion_index = 0
        if not self.suggestions:
            self.suggestions_push_id = ""
        if not self.accept(card, t):
            self.say(f"{card['name'] or card['sku']} is already in your cart", t)
        return [("suggestion.taken", {**{k: card[k] for k in ("sku", "name", "price", "colour", "size")},
                                      "by": by})]

    def dismiss_suggestions(self, t: float, by: str = "shopper") -> list[tuple[str, dict]]:
        self.suggestions, self.suggestion_index, self.suggestions_push_id = [], 0, ""
        self.last_activity_t = t
        return [("suggestions.dismissed", {"by": by})]

    def step_colour(self, step: int) -> None:
        n = len(self.product.colours)
        self.colour_index = (self.colour_index + step) % n
        self.hue = None

    def do(self, action: str, t: float, source: str = "", by_shopper: bool = True) -> list[tuple[str, dict]]:
        if action == "none":
            return []
        if self.knocking and action in ("confirm", "cancel") and not by_shopper:
            return []        # who sees her is her choice alone: her gesture or her button, never a command
        if self.consent is not None and not self.knocking and by_shopper:
            # only she answers the profile question (a store tool's action goes on as usual)
            self.last_activity_t = t
            self.log.append(action)
            # thumbs-up (or the Yes button) is a yes; anything else she does is a no
            return [("action.done", {"action": action, "source": source})] + self.answer_consent(action == "confirm", t)
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
            out.append(("staff.called", {"product": self.product.sku, "kind": "help",
                                         "size": self.cart()["items"][0]["size"], "colour": self.color_name}))
        elif action == "pick_size":
            self.picking_size = bool(self.product.sizes)
        elif action == "reserve":
            out.append(("reserve.requested", {"on": True, "source": "mirror"}))
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
        elif action == "confirm" and self.carousel_up:
            # a thumbs-up on the carousel takes its card instead of saving the look, but
            # only a card a frame has shown: a push landing with her thumbs-up takes nothing
            if not self.suggestions_seen:
                return []
            out += self.take_suggestion(t, "shopper" if by_shopper else source)
            return out
        elif action == "confirm":
            out.append(("look.saved", {"sku": self.product.sku, "colour": self.color_name}))
        text = MESSAGES.get(action)
        if text:
            self.say(text, t)
        return out
