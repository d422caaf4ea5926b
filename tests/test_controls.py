"""On-screen controls pressed by a hand held still: layout, hand input, session, drawing."""

import numpy as np

from mirror.core import config
from mirror.core.bus import Event
from mirror.core.catalog import load_catalog
from mirror.core.controls import control_at, visible_controls
from mirror.core.session import Session
from render.compositor import Compositor
from render.overlays import ShopperOverlay, ShopperView
from tests.handmodel import hand
from vision.hands import Hand
from vision.interaction import HandInput

CURL_REST = dict(middle=1.0, ring=1.0, pinky=1.0)


def _session() -> Session:
    cfg = config.load(None, env={})
    s = Session(load_catalog(config.CONFIG_DIR / "catalog.toml"), cfg.actions.model_dump())
    s.handle(Event("presence.changed", {"present": True}, 0.0))
    return s


def _centre(control):
    x, y, w, h = control.rect
    return x + w / 2, y + h / 2


def test_layout_depends_on_state_and_controls_do_not_overlap():
    assert visible_controls(False) == []
    idle = visible_controls(True)
    assert {c.action for c in idle} == {"prev_color", "next_color", "help", "call_friend", "pick_size", "reserve"}
    assert "hang_up" in {c.action for c in visible_controls(True, in_call="Jane")}
    knock = visible_controls(True, knocking="Jane")
    assert [c.action for c in knock] == ["cancel", "confirm"] and knock[1].label == "Let Jane in"
    consent = visible_controls(True, asking_consent=True)
    assert [c.action for c in consent] == ["cancel", "confirm"]
    picker = visible_controls(True, sizes=("XS", "S", "M", "L", "XL"), size="M")
    assert [c.arg for c in picker] == ["XS", "S", "M", "L", "XL", ""] and picker[-1].action == "close_sizes"
    assert picker[2].label == "Size M (now)"
    for controls in (idle, knock, consent, picker):
        for c in controls:
            x, y, w, h = c.rect
            assert 0 <= x and x + w <= 1 and 0 <= y and y + h <= 1
            assert control_at(controls, *_centre(c)) is c
    # the middle of the screen (where the garment is) is never a control
    assert control_at(idle, 0.5, 0.45) is None


def test_dwell_on_a_control_runs_its_action_and_elsewhere_nothing():
    s = _session()
    nxt = next(c for c in s.controls() if c.action == "next_color")
    out = s.handle(Event("cursor.dwell", dict(zip("xy", _centre(nxt))), 1.0))
    assert s.colour_index == 1 and ("action.done", {"action": "next_color", "source": "control:next_color"}) in out
    assert s.handle(Event("cursor.dwell", {"x": 0.5, "y": 0.5}, 2.0)) == [] and s.colour_index == 1
    call = next(c for c in s.controls() if c.action == "call_friend")
    out = s.handle(Event("cursor.dwell", dict(zip("xy", _centre(call))), 3.0))
    assert any(name == "call.requested" for name, _ in out)


def test_knock_card_controls_admit_and_decline():
    s = _session()
    s.handle(Event("call.knock", {"name": "Jane"}, 1.0))
    admit = next(c for c in s.controls() if c.id == "admit")
    out = s.handle(Event("cursor.dwell", dict(zip("xy", _centre(admit))), 2.0))
    assert ("call.admit", {"name": "Jane"}) in out
    s.handle(Event("call.knock", {"name": "Ola"}, 3.0))
    decline = next(c for c in s.controls() if c.id == "decline")
    out = s.handle(Event("cursor.dwell", dict(zip("xy", _centre(decline))), 4.0))
    assert ("call.decline", {"name": "Ola"}) in out and s.knocking == ""


def test_controls_off_in_config_or_when_nobody_is_there():
    s = _session()
    s.controls_on = False
    assert s.controls() == [] and s.handle(Event("cursor.dwell", {"x": 0.9, "y": 0.4}, 1.0)) == []
    s.controls_on = True
    s.handle(Event("presence.changed", {"present": False}, 2.0))
    assert s.controls() == []


def _ids(controls):
    """The kiosk's callback: the id of the control under a point."""
    def at(x, y):
        c = control_at(controls, x, y)
        return c.id if c is not None else None
    return at


def _pointing_at(x: float, y: float, noise_seed: int) -> Hand:
    """A synthetic pointing hand whose index tip lands on display point (x, y)
    with the default mirror mapping (display x = 1 - camera x)."""
    pts = hand({**CURL_REST, "index": 0.0}, noise=0.004, seed=noise_seed)
    w, h = 1280, 720
    pts[:, 0] += (1.0 - x) * w - pts[8, 0]
    pts[:, 1] += y * h - pts[8, 1]
    return Hand(pts, "Right", 0.95, (w, h))


def test_hand_held_still_on_a_control_presses_it_once_after_dwell_s():
    cfg = config.load(None, env={}).gestures
    controls = visible_controls(True)
    nxt = next(c for c in controls if c.action == "next_color")
    hi = HandInput(cfg, control_at=_ids(controls))
    presses, progress, gestures = [], [], []
    t = 0.0
    while t < cfg.dwell_s * 2 + 0.5:
        for ev in hi.update([_pointing_at(*_centre(nxt), noise_seed=round(t * 30))], t):
            if ev.name == "cursor.dwell":
                presses.append((t, ev.data))
            if ev.name == "gesture.fired":
                gestures.append(ev.data["gesture"])
        progress.append(hi.cursor_progress)
        t += 1 / 30
    assert len(presses) == 1                         # held on: one press, not a stream
    assert presses[0][1]["control"] == "next_color"
    assert gestures == []                            # pointing at a button is not also pointing_up
    t_press, where = presses[0]
    assert cfg.dwell_s - 0.05 <= t_press <= cfg.dwell_s + 0.15
    assert control_at(controls, where["x"], where["y"]) is nxt
    assert max(progress) > 0.9 and progress[5] > 0   # the ring fills while she holds


def test_hand_held_still_off_the_controls_presses_nothing_and_shows_no_progress():
    cfg = config.load(None, env={}).gestures
    controls = visible_controls(True)
    hi = HandInput(cfg, control_at=_ids(controls))
    for i in range(90):
        evs = hi.update([_pointing_at(0.5, 0.6, noise_seed=i)], i / 30)
        assert not any(e.name == "cursor.dwell" for e in evs)
        assert hi.cursor_progress == 0.0


def test_thumbs_up_resting_on_a_control_does_not_press_it():
    cfg = config.load(None, env={}).gestures
    controls = visible_controls(True)
    nxt = next(c for c in controls if c.action == "next_color")
    hi = HandInput(cfg, control_at=_ids(controls))
    x, y = _centre(nxt)
    for i in range(90):
        pts = hand(dict(index=1.0, middle=1.0, ring=1.0, pinky=1.0), "up", noise=0.004, seed=i)
        pts[:, 0] += (1.0 - x) * 1280 - pts[8, 0]
        pts[:, 1] += y * 720 - pts[8, 1]
        evs = hi.update([Hand(pts, "Right", 0.95, (1280, 720))], i / 30)
        assert not any(e.name == "cursor.dwell" for e in evs)
    assert hi.classification.gesture == "thumbs_up"


def test_a_button_that_appears_under_a_still_hand_after_a_press_is_not_pressed():
    """She lets her friend in by holding her hand on "Let Jane in"; the card
    goes and "Hang up" appears in the same place under her still hand. That
    must not hang up: one press per visit, and a press names its button."""
    cfg = config.load(None, env={}).gestures
    s = _session()
    s.handle(Event("call.knock", {"name": "Jane"}, 0.0))
    hi = HandInput(cfg, control_at=lambda x, y: (c.id if (c := control_at(s.controls(), x, y)) else None))
    admit = next(c for c in s.controls() if c.id == "admit")
    x, y = _centre(admit)
    sent = []
    for i in range(150):                             # 5 s, drifting 2% of the screen per second
        t = i / 30
        for ev in hi.update([_pointing_at(x + 0.02 * t, y, noise_seed=i)], t):
            if ev.name == "cursor.dwell":
                for name, data in s.handle(Event(ev.name, ev.data, t)):
                    sent.append(name)
                    if name == "call.admit":
                        s.handle(Event("call.admitted", {"name": "Jane"}, t))
    assert sent.count("call.admit") == 1
    assert "call.hangup" not in sent
    assert any(c.id == "hang_up" for c in s.controls())     # it is there, under her hand


def test_a_press_for_a_button_that_is_gone_does_nothing():
    s = _session()
    s.handle(Event("call.knock", {"name": "Jane"}, 0.0))
    admit = next(c for c in s.controls() if c.id == "admit")
    s.handle(Event("call.admitted", {"name": "Jane"}, 0.5))
    out = s.handle(Event("cursor.dwell", {**dict(zip("xy", _centre(admit))), "control": "admit"}, 1.0))
    assert out == [] and s.in_call == "Jane"


def test_hand_sweeping_across_a_control_does_not_press_it():
    cfg = config.load(None, env={}).gestures
    controls = visible_controls(True)
    hi = HandInput(cfg, control_at=_ids(controls))
    nxt = next(c for c in controls if c.action == "next_color")
    cx, cy = _centre(nxt)
    for i in range(60):                              # 2 s moving along the row of the control
        x = 0.7 + 0.3 * abs(((i / 20) % 2) - 1)
        evs = hi.update([_pointing_at(x, cy, noise_seed=i)], i / 30)
        assert not any(e.name == "cursor.dwell" for e in evs)


def test_compositor_draws_controls_and_the_press_progress():
    comp = Compositor(270, 480, headless=True)
    try:
        frame = np.full((720, 1280, 3), 60, np.uint8)
        rect = (0.7, 0.36, 0.25, 0.07)
        shopper = ShopperOverlay()
        comp.add(shopper)
        shopper.view = ShopperView(controls=[("Next colour", rect, False, 0.0)])
        comp.compose(frame)
        idle = comp.snapshot()
        shopper.view = ShopperView(controls=[("Next colour", rect, True, 0.5)])
        comp.compose(frame)
        pressing = comp.snapshot()
    finally:
        comp.close()
    x0, y0 = round(rect[0] * 270), round(rect[1] * 480)
    w, h = round(rect[2] * 270), round(rect[3] * 480)
    left = pressing[y0 + h // 2 - 3:y0 + h // 2 + 3, x0 + 6:x0 + w // 4]      # filled part
    right = pressing[y0 + h // 2 - 3:y0 + h // 2 + 3, x0 + 3 * w // 4:x0 + w - 6]
    assert left[..., 2].mean() > right[..., 2].mean() + 30     # blue (RGB) fill up to half way
    assert (idle[y0:y0 + h, x0:x0 + w] != 60).any()            # the button is drawn when idle
    assert (idle[10:40, 10:40] == 60).all()                    # and nothing else is


def test_the_aimed_button_is_the_one_that_lights_up():
    cfg = config.load(None, env={}).gestures
    controls = visible_controls(True)
    nxt = next(c for c in controls if c.action == "next_color")
    hi = HandInput(cfg, control_at=_ids(controls))
    hi.update([_pointing_at(*_centre(nxt), noise_seed=1)], 0.0)
    assert hi.target == "next_color"
    x, y = _centre(nxt)
    pts = hand(dict(index=1.0, middle=1.0, ring=1.0, pinky=1.0), "up", noise=0.004, seed=2)
    pts[:, 0] += (1.0 - x) * 1280 - pts[8, 0]
    pts[:, 1] += y * 720 - pts[8, 1]
    hi.update([Hand(pts, "Right", 0.95, (1280, 720))], 0.1)       # a thumbs-up on it: not aiming
    assert hi.target is None
    hi.update([], 0.2)
    assert hi.target is None
