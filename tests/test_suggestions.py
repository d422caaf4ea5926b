"""Staff suggestions on the mirror (issue 10): the session's carousel, its
overlay, the push-to-frame probe, and the whole path through a kiosk."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from mirror.app.push_probe import PushProbe
from mirror.core import config
from mirror.core.bus import Event, EventBus
from mirror.core.catalog import load_catalog
from mirror.core.controls import visible_controls
from mirror.core.events import as_dict, payload
from mirror.core.feature import Feature
from mirror.core.session import MAX_SUGGESTIONS, Session
from render.compositor import Compositor
from render.overlays import SUGGESTIONS_BAND, SuggestionsOverlay, SuggestionsView

IMAGES = sorted((config.CONFIG_DIR / "catalog-images").glob("*.png"))
PICTURE_BG = (245, 243, 239)         # the drawn catalogue pictures' light background, RGB


def picture_pixels(rgb: np.ndarray, height: int, width: int) -> int:
    """How many pixels of a product picture's background the card's left part
    shows (the camera behind the card's panel is darkened, so none of its own)."""
    top, bottom = round(height * SUGGESTIONS_BAND[0]), round(height * SUGGESTIONS_BAND[1])
    band = rgb[top:bottom, :round(width * 0.2)].astype(int)
    return int((np.abs(band - PICTURE_BG).sum(2) < 12).sum())


def ev(name: str, t: float = 1.0, /, **data) -> Event:
    """An event as the bus would deliver it (its payload checked by the registry)."""
    return Event(name, as_dict(payload(name, data)), t)


def items(n: int) -> list[dict]:
    return [{"sku": f"SUG-{i}", "name": f"Item {i}", "price": f"{10 + i}.00", "image": str(IMAGES[i % len(IMAGES)]),
             "colour": "Black", "size": "M", "in_stock": [True, False, None][i % 3]} for i in range(n)]


def session(present: bool = True) -> Session:
    s = Session(load_catalog(config.CONFIG_DIR / "catalog.toml"), config.load(None, env={}).actions.model_dump())
    if present:
        s.handle(ev("presence.changed", 0.0, present=True))
    return s


def push(s: Session, cards: list[dict], push_id: str = "p1", t: float = 1.0, shown: bool = True) -> list:
    """A staff push, and (unless shown=False) the first frame that showed it, as the kiosk's probe says."""
    out = s.handle(ev("suggestions.pushed", t, items=cards, by="Anna", push_id=push_id, t_sent=0.5))
    if shown:
        out += s.handle(ev("suggestions.shown", t + 0.03, push_id=push_id, sku=str((cards[0] if cards and isinstance(cards[0], dict) else {}).get("sku", "")),
                           t_sent=0.5, shown_at=t + 0.03))
    return out


def test_her_answer_waits_for_a_card_she_could_see():
    """A push landing in the same instant as her thumbs-up (meant for the card before) takes nothing."""
    s = session()
    push(s, items(2), push_id="p1")
    push(s, items(3), push_id="p2", t=2.0, shown=False)
    assert s.handle(ev("gesture.fired", 2.01, gesture="thumbs_up")) == [] and len(s.suggestions) == 3
    assert s.handle(ev("gesture.fired", 2.02, gesture="open_palm")) == [] and len(s.suggestions) == 3
    s.handle(ev("suggestions.shown", 2.05, push_id="p1", sku="SUG-0", t_sent=0.5, shown_at=2.05))   # an old push
    assert s.suggestions_seen is False
    s.handle(ev("suggestions.shown", 2.05, push_id="p2", sku="SUG-0", t_sent=0.5, shown_at=2.05))
    assert "suggestion.taken" in names(s.handle(ev("gesture.fired", 3.5, gesture="thumbs_up")))


def names(out: list) -> list[str]:
    return [name for name, _ in out]


def carts(out: list) -> list[dict]:
    return [data["cart"] for name, data in out if name == "cart.changed"]


# --- the session ---------------------------------------------------------------
def test_a_push_shows_the_carousel_quietly_and_a_new_push_replaces_it():
    s = session()
    assert s.carousel() is None
    out = push(s, items(2))
    assert out == [] and s.message == ""                # nothing intrusive: the card appears by itself
    view = s.carousel()
    assert view["index"] == 0 and view["push_id"] == "p1"
    assert [c["sku"] for c in view["cards"]] == ["SUG-0", "SUG-1"]
    assert view["cards"][0] == {"sku": "SUG-0", "name": "Item 0", "price": "10.00", "image": str(IMAGES[0]),
                                "colour": "Black", "size": "M", "in_stock": True}
    assert view["cards"][1]["in_stock"] is False
    s.handle(ev("motion.swipe", 2.0, direction="right"))
    push(s, items(3)[2:], push_id="p2", t=3.0)
    view = s.carousel()
    assert [c["sku"] for c in view["cards"]] == ["SUG-2"] and view["index"] == 0 and view["push_id"] == "p2"
    assert view["cards"][0]["in_stock"] is None         # unknown stays unknown
    push(s, [], push_id="p3", t=4.0)                    # an empty push clears it
    assert s.carousel() is None


def test_a_push_of_nine_keeps_eight_and_drops_bad_or_repeated_cards():
    s = session()
    cards = [{"name": "no sku"}, "not a card", items(1)[0], *items(9)]
    push(s, cards)
    view = s.carousel()
    assert len(view["cards"]) == MAX_SUGGESTIONS == 8
    assert [c["sku"] for c in view["cards"]] == [f"SUG-{i}" for i in range(8)]


def test_swipes_go_through_the_cards_instead_of_the_colours():
    s = session()
    push(s, items(3))
    colour = s.colour_index
    s.handle(ev("motion.swipe", 2.0, direction="right"))
    assert s.carousel()["index"] == 1
    s.handle(ev("motion.swipe", 2.5, direction="right"))
    s.handle(ev("motion.swipe", 3.0, direction="right"))
    assert s.carousel()["index"] == 0                   # round and round
    s.handle(ev("motion.swipe", 3.5, direction="left"))
    assert s.carousel()["index"] == 2
    assert s.colour_index == colour and s.hue is None
    # the colour buttons still change the colour: they say so on them
    out = s.handle(ev("action.requested", 4.0, action="next_color", source="control"))
    assert s.colour_index == colour + 1 and s.carousel()["index"] == 2 and "action.done" in names(out)


def test_a_thumbs_up_puts_the_current_card_in_the_cart_once():
    s = session()
    push(s, items(3))
    s.handle(ev("motion.swipe", 2.0, direction="right"))           # card 1
    out = s.handle(ev("gesture.fired", 3.0, gesture="thumbs_up"))
    assert ("suggestion.taken", {"sku": "SUG-1", "name": "Item 1", "price": "11.00", "colour": "Black",
                                 "size": "M", "by": "shopper"}) in out
    assert "look.saved" not in names(out) and s.message == "Added Item 1"
    [cart] = carts(out)
    assert cart["items"][1:] == [{"sku": "SUG-1", "name": "Item 1", "colour": "Black", "size": "M",
                                  "price": "11.00", "qty": 1}]
    view = s.carousel()                                             # it left the carousel; the next one shows
    assert [c["sku"] for c in view["cards"]] == ["SUG-0", "SUG-2"] and view["index"] == 1
    # the same code path as suggestion.accepted: a SKU already in the cart is not added twice
    s.handle(ev("suggestion.accepted", 4.0, sku="SUG-2", name="Item 2", price="12.00"))
    out = s.handle(ev("gesture.fired", 5.0, gesture="thumbs_up"))
    assert "suggestion.taken" in names(out) and carts(out) == []
    assert [i["sku"] for i in s.cart()["items"]].count("SUG-2") == 1
    out = s.handle(ev("gesture.fired", 6.0, gesture="thumbs_up"))  # the last card
    assert [i["sku"] for i in carts(out)[0]["items"][1:]] == ["SUG-1", "SUG-2", "SUG-0"]
    assert s.carousel() is None
    out = s.handle(ev("gesture.fired", 7.0, gesture="thumbs_up"))  # no carousel: thumbs-up saves the look again
    assert "look.saved" in names(out) and "suggestion.taken" not in names(out)


def test_a_store_tools_confirm_takes_the_card_and_says_who():
    s = session()
    push(s, items(1))
    out = s.handle(ev("action.requested", 2.0, action="confirm", source="control"))
    assert [d["by"] for n, d in out if n == "suggestion.taken"] == ["control"]


def test_an_open_palm_dismisses_the_carousel_instead_of_asking_for_help():
    s = session()
    push(s, items(2))
    help_text = "Draw a circle with one finger"
    # the Help button is a button: it still helps, and the carousel stays
    help_ctl = next(c for c in s.controls() if c.id == "help")
    x, y = help_ctl.rect[0] + help_ctl.rect[2] / 2, help_ctl.rect[1] + help_ctl.rect[3] / 2
    out = s.handle(ev("cursor.dwell", 2.0, x=x, y=y, control="help"))
    assert ("action.done", {"action": "help", "source": "control:help"}) in out and s.carousel() is not None
    s.say("", 2.5)
    out = s.handle(ev("gesture.fired", 3.0, gesture="open_palm"))
    assert out == [("suggestions.dismissed", {"by": "shopper"})]
    assert s.carousel() is None and s.suggestions == [] and not s.message.startswith(help_text)
    out = s.handle(ev("gesture.fired", 4.0, gesture="open_palm"))   # no carousel: help as configured
    assert ("action.done", {"action": "help", "source": "open_palm"}) in out and s.message.startswith(help_text)


def test_a_friend_knocking_wins_over_the_carousel():
    s = session()
    push(s, items(2))
    s.handle(ev("call.knock", 2.0, conn="c1", name="Jane"))
    assert s.carousel() is None                          # her question is the one on screen
    out = s.handle(ev("gesture.fired", 3.0, gesture="thumbs_up"))
    assert ("call.admit", {"name": "Jane"}) in out and "suggestion.taken" not in names(out)
    assert carts(out) == [] and len(s.suggestions) == 2
    s.handle(ev("call.admitted", 3.5, name="Jane"))
    assert len(s.carousel()["cards"]) == 2               # back once she is let in
    s.handle(ev("call.knock", 4.0, conn="c2", name="Ann"))
    out = s.handle(ev("gesture.fired", 5.0, gesture="fist"))
    assert ("call.decline", {"name": "Ann"}) in out
    s.handle(ev("call.knock", 6.0, conn="c3", name="Bo"))
    out = s.handle(ev("gesture.fired", 7.0, gesture="open_palm"))   # help, not a dismissal, while she knocks
    assert "suggestions.dismissed" not in names(out) and len(s.suggestions) == 2


def test_leaving_wipes_the_carousel_with_everything_else():
    s = session()
    push(s, items(3))
    s.handle(ev("gesture.fired", 2.0, gesture="thumbs_up"))
    s.handle(ev("motion.swipe", 3.0, direction="right"))
    out = s.handle(ev("presence.changed", 10.0, present=False))
    assert "session.ended" in names(out)
    assert s.carousel() is None and s.suggestions == [] and s.suggestion_index == 0 and s.suggestions_push_id == ""
    assert [i["sku"] for i in s.cart()["items"]] == [s.product.sku]


# --- the overlay -----------------------------------------------------------------
@pytest.fixture
def comp():
    c = Compositor(270, 480, headless=True)
    yield c
    c.close()


def test_the_band_leaves_the_buttons_and_the_checkout_panel_free():
    top, bottom = SUGGESTIONS_BAND
    for controls in (visible_controls(True), visible_controls(True, knocking="Jane"),
                     visible_controls(True, in_call="Jane")):
        for c in controls:
            assert c.rect[1] + c.rect[3] < top, c
    assert bottom < 0.66                                 # nfc/overlay.py's panel starts at 0.66 of the height


def test_the_overlay_draws_the_card_in_its_band(comp):
    frame = np.full((720, 1280, 3), 90, np.uint8)
    ov = SuggestionsOverlay()
    comp.add(ov)
    comp.compose(frame, 1.0)
    plain = comp.snapshot().astype(int)
    assert ov.drawn is None
    ov.view = SuggestionsView(cards=items(3), index=1, push_id="p9")
    comp.compose(frame, 1.0)
    shown = comp.snapshot().astype(int)
    changed = np.abs(shown - plain).sum(2) > 30
    top, bottom = round(480 * SUGGESTIONS_BAND[0]), round(480 * SUGGESTIONS_BAND[1])
    assert changed[top:bottom].mean() > 0.5             # the card fills its band ...
    assert not changed[:top].any() and not changed[bottom:].any()     # ... and nothing else
    assert ov.drawn == ("p9", "SUG-1")
    assert picture_pixels(shown, 480, 270) > 300 and picture_pixels(plain, 480, 270) == 0   # the product's picture
    ov.view = None
    comp.compose(frame, 2.0)
    assert ov.drawn is None and np.array_equal(comp.snapshot().astype(int), plain)


def test_a_missing_or_broken_picture_draws_a_placeholder(comp, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a picture at all")
    frame = np.full((720, 1280, 3), 90, np.uint8)
    ov = SuggestionsOverlay()
    comp.add(ov)
    comp.compose(frame, 1.0)
    plain = comp.snapshot().astype(int)
    top, bottom = round(480 * SUGGESTIONS_BAND[0]), round(480 * SUGGESTIONS_BAND[1])
    for image in (str(tmp_path / "missing.png"), str(broken), str(tmp_path), "", "\0bad"):
        card = {"sku": "X1", "name": "Scarf" * 20, "price": "", "image": image, "in_stock": None}
        ov.view = SuggestionsView(cards=[card], push_id="p1")
        comp.compose(frame, 1.0)
        comp.compose(frame, 1.1)                         # the second frame reuses the cached miss
        assert ov.drawn == ("p1", "X1")
        shown = comp.snapshot()
        assert (np.abs(shown.astype(int) - plain).sum(2) > 30)[top:bottom].mean() > 0.5
        assert picture_pixels(shown, 480, 270) == 0     # a placeholder, no picture
    assert all(v is None for v in ov._images.values()) and len(ov._images) == 4


# --- push to frame -------------------------------------------------------------------
def test_the_probe_says_when_a_push_first_reaches_a_frame():
    bus = EventBus()
    drawn: list = [None]
    probe = PushProbe(bus, lambda: drawn[0])
    got = []
    bus.subscribe("suggestions.shown", got.append)
    bus.publish("suggestions.pushed", items=items(1), by="Anna", push_id="p1", t_sent=5.0)
    bus.dispatch()
    probe.on_composed(None)                              # not drawn yet
    drawn[0] = ("old", "SUG-9")
    probe.on_composed(None)                              # an older push's card: not this one
    drawn[0] = ("p1", "SUG-0")
    before = time.monotonic()
    probe.on_composed(None)
    probe.on_composed(None)                              # only the first frame counts
    bus.dispatch()
    assert [e.data["push_id"] for e in got] == ["p1"]
    assert got[0].data["sku"] == "SUG-0" and got[0].data["t_sent"] == 5.0 and got[0].data["shown_at"] >= before


# --- the whole path in a kiosk ---------------------------------------------------------
class Script(Feature):
    """Once the shopper is seen: push two cards; once the frame shows one, keep
    a snapshot and give a thumbs-up; stop when the cart has the card."""

    def __init__(self, kiosk):
        self.k = kiosk
        self.step = "wait"
        self.shown: list[dict] = []
        self.carts: list[dict] = []
        self.taken: list[dict] = []
        self.snapshot = None
        self.before = None
        kiosk.bus.subscribe("suggestions.shown", lambda e: self.shown.append(e.data))
        kiosk.bus.subscribe("cart.changed", lambda e: self.carts.append(e.data["cart"]))
        kiosk.bus.subscribe("suggestion.taken", lambda e: self.taken.append(e.data))

    def before_frame(self, now):
        if self.step == "wait" and self.k.session.present:
            self.step = "pushed"
            pics = config.CONFIG_DIR / "catalog-images"
            cards = [{"sku": "DRESS-0744", "name": "Wrap dress", "price": "89.00",
                      "image": str(pics / "dress-0744.png"), "colour": "Red", "size": "M", "in_stock": True},
                     {"sku": "SHOE-0315", "name": "Heels", "price": "79.00", "image": str(pics / "shoe-0315.png"),
                      "colour": "", "size": "", "in_stock": False}]
            self.k.bus.publish("suggestions.pushed", items=cards, by="Anna", push_id="push-1", t_sent=time.monotonic())
        elif self.step == "shown" and self.snapshot is not None:
            self.step = "thumbs"
            self.k.bus.publish("gesture.fired", gesture="thumbs_up", score=1.0)
        elif self.step == "thumbs" and any(i["sku"] == "DRESS-0744" for c in self.carts for i in c["items"][1:]):
            self.step = "done"
            self.k.stop()

    def on_composed(self, frame):
        if self.step == "pushed" and self.before is None:     # composed before the push was dispatched
            self.before = frame.comp.snapshot()
        elif self.step == "pushed" and self.shown:
            self.snapshot = frame.comp.snapshot()
            self.step = "shown"


def test_kiosk_shows_pushed_cards_and_a_thumbs_up_puts_one_in_the_cart(media, tmp_path):
    from mirror.app.kiosk import Kiosk
    from vision.capture import ImageFolderSource

    frames = tmp_path / "frames"
    frames.mkdir()
    # a person whose gesture (pointing up: "select") is none of the carousel's
    cv2.imwrite(str(frames / "0001.png"), cv2.imread(str(media / "images" / "pointing_up.jpg")))
    cfg = config.load(None, env={}).replace("display", fullscreen=False, width=270, height=480)
    k = Kiosk(cfg, source_factory=lambda: ImageFolderSource(frames, fps=10), headless=True, features=[],
              serve=False)
    script = Script(k)
    k.add(script)
    stats = k.run(120.0)                                 # a cap: it stops once the cart has the card
    assert script.step == "done", (stats, script.step, script.shown, script.carts)
    [shown] = script.shown
    assert shown["push_id"] == "push-1" and shown["sku"] == "DRESS-0744"
    assert 0 <= shown["shown_at"] - shown["t_sent"] < 5.0
    # the snapshot of that frame has the card: its panel over the band, the product's picture on it
    top, bottom = round(480 * SUGGESTIONS_BAND[0]), round(480 * SUGGESTIONS_BAND[1])
    changed = np.abs(script.snapshot.astype(int) - script.before.astype(int)).sum(2) > 30
    assert changed[top:bottom].mean() > 0.5
    assert picture_pixels(script.snapshot, 480, 270) > 300
    assert script.taken == [{"sku": "DRESS-0744", "name": "Wrap dress", "price": "89.00", "colour": "Red",
                             "size": "M", "by": "shopper"}]
    assert "confirm" in stats["actions"]
    assert [c["sku"] for c in k.session.suggestions] == ["SHOE-0315"]


def test_a_push_that_gets_the_database_after_its_sender_gave_up_is_not_made(tmp_path):
    """`mirror staff push` waits 10 s; a push stuck behind a long catalogue import used to
    reach the mirror after the command had said nothing was pushed."""
    import asyncio
    import time
    from mirror.app.catalog_source import kiosk_catalog
    from mirror.core import config
    from mirror.core.bus import EventBus
    from mirror.staff.service import CardError, StaffFeature
    cfg = config.load(None, env={"MIRROR_CHECKOUT_DB_PATH": str(tmp_path / "o.db")})
    kiosk_catalog(cfg)                                   # seeds the catalogue, as the kiosk does
    bus = EventBus()
    pushed = []
    bus.subscribe("suggestions.pushed", lambda ev: pushed.append(ev.data["push_id"]))
    staff = StaffFeature(cfg, bus)

    async def scenario():
        staff.start(asyncio.get_running_loop())
        bus.publish("presence.changed", present=True)
        bus.publish("session.started", id="s1")
        bus.dispatch()
        try:
            await staff.push("control:ann", ["SHOE-0315"], None, deadline=time.monotonic() - 0.1)
        except CardError as e:
            assert e.status == 504 and "nothing pushed" in str(e)
        else:
            raise AssertionError("a late push was made")
        bus.dispatch()
        assert pushed == []
        out = await staff.push("control:ann", ["SHOE-0315"], None, deadline=time.monotonic() + 10)
        bus.dispatch()
        assert out["ok"] and pushed == [out["push_id"]]
    try:
        asyncio.run(scenario())
    finally:
        staff.stop()
