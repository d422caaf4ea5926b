"""`mirror demo`: the whole kiosk on the bundled clip, with nothing attached.

The clip shows a real shopper (a real thumbs-up goes through the real gesture
path and fires "confirm"), but it cannot show a circle, a swipe or a button press, so a scripted
timeline injects those as input events. The bottom banner says so whenever a
scripted event plays.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from call.service import CallService
from mirror.app.addons import LiveStats, Recorder, Timeline, TimelineItem
from mirror.app.kiosk import Kiosk
from mirror.core import config
from mirror.core.controls import visible_controls
from nfc.service import CheckoutService
from vision.capture import VideoFileSource


def demo_timeline() -> list[TimelineItem]:
    items = [TimelineItem(0.8, "", screenshot="01-start.png")]
    # A clockwise circle of the finger: 24 steps of 15 degrees over 1.6 s.
    items.append(TimelineItem(2.0, "", banner="Scripted: circle gesture (the clip has none)"))
    for i in range(24):
        items.append(TimelineItem(2.0 + i * 0.066, "motion.circle", {"delta_deg": 15.0, "total_deg": 15.0 * (i + 1)}))
    items.append(TimelineItem(3.2, "", screenshot="02-circle.png"))
    # A hand held still on the "Next colour" button: the press event the hand input gives.
    nxt = next(c for c in visible_controls(True) if c.action == "next_color")
    x, y, w, h = nxt.rect
    items.append(TimelineItem(4.2, "cursor.dwell", {"x": x + w / 2, "y": y + h / 2},
                              banner="Scripted: a hand held on Next colour presses it"))
    items.append(TimelineItem(4.5, "", screenshot="03-button.png"))
    items.append(TimelineItem(5.0, "motion.swipe", {"direction": "right"},
                              banner="Scripted: swipe to the next colour"))
    items.append(TimelineItem(5.3, "", screenshot="04-swipe.png"))
    items.append(TimelineItem(7.0, "action.requested", {"action": "toggle_debug", "source": "script"},
                              banner="Scripted: debug overlay on"))
    items.append(TimelineItem(7.5, "", screenshot="05-debug.png"))
    items.append(TimelineItem(8.5, "", screenshot="06-later.png"))
    # A friend joins: the demo opens no port, so the call server's notifications are scripted.
    items.append(TimelineItem(9.0, "call.link", {"url": "https://mirror.example:8443/join#demo-link-not-valid",
                                                 "expires": time.time() + 600},
                              banner="Scripted: the shopper asks for a friend; the QR code is an example"))
    items.append(TimelineItem(9.6, "", screenshot="07-invite.png"))
    items.append(TimelineItem(10.5, "call.knock", {"conn": "demo", "name": "Jane"},
                              banner="Scripted: a friend opened the link"))
    items.append(TimelineItem(11.0, "", screenshot="08-knock.png"))
    items.append(TimelineItem(12.0, "gesture.fired", {"gesture": "thumbs_up", "score": 1.0},
                              banner="Scripted: thumbs-up lets her in"))
    items.append(TimelineItem(12.1, "call.admitted", {"name": "Jane"}))
    items.append(TimelineItem(12.3, "call.connected", {"name": "Jane"}))
    items.append(TimelineItem(13.0, "call.reaction", {"name": "Jane", "kind": "love", "text": ""},
                              banner="Scripted: the friend reacts"))
    items.append(TimelineItem(13.4, "call.reaction", {"name": "Jane", "kind": "comment",
                                                      "text": "That colour suits you!"}))
    items.append(TimelineItem(13.8, "", screenshot="09-reaction.png"))
    items.append(TimelineItem(15.0, "call.ended", {"name": "Jane", "reason": "friend hung up"},
                              banner="Scripted: the friend hangs up"))
    items += checkout_timeline(16.0)
    return items


def checkout_timeline(at: float) -> list[TimelineItem]:
    """A card tap: the very bus event the NFC watcher publishes for a real tap
    (no reader in the demo), so the real checkout turns it into an order."""
    import ndef
    member = ndef.Record("urn:nfc:ext:store.example:member", "", b"id=DEMO-0001&name=Jenny")
    return [TimelineItem(at, "nfc.tap", {"reader": "scripted", "uid": bytes.fromhex("04D3E0C0FFEE01"),
                                         "records": [member]},
                         banner="Scripted: a card tap (no reader attached)"),
            TimelineItem(at + 0.6, "", screenshot="10-checkout.png")]


def run_demo(out_dir: Path, seconds: float = 18.0, headless: bool | None = None, window: bool = False) -> int:
    if window:
        headless = False
    elif headless is None:
        headless = not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY")
    cfg = config.load(None)
    # The demo always uses the bundled clip, paced at its own 25 fps, and a
    # window-sized portrait view.
    cfg = cfg.replace("display", fullscreen=False, width=540, height=960)
    out_dir.mkdir(parents=True, exist_ok=True)
    # No port, no reader, no network: the call's server notifications and the
    # tap come from the timeline, and the order is "pay at the till" in out_dir,
    # which holds the catalogue it seeds too: the demo writes nowhere else (not
    # the kiosk's own database in the state folder).
    cfg = cfg.replace("checkout", store_url="", db_path=str((out_dir / "orders.db").resolve()))
    features = [lambda c, bus, size: CallService(c, bus, screen_width=size[0], serve=False),
                lambda c, bus, size: CheckoutService(c, bus, watch=False)]
    kiosk = Kiosk(cfg, source_factory=lambda: VideoFileSource(config.DEMO_CLIP, loop=True, fps=25),
                  headless=headless, features=features, serve=False)
    timeline = Timeline(kiosk.bus, demo_timeline(), out_dir)
    kiosk.add(timeline)
    if headless:
        kiosk.add(Recorder(out_dir / "demo.mp4", cfg.display.fps))
    kiosk.add(LiveStats(lambda t: (
        f"t={t:5.1f}s  render {kiosk.loop.stats.fps:4.1f} fps  vision {kiosk.camera.vision_frames / max(t, 1e-6):4.1f} fps  "
        f"gesture {kiosk.gesture_name():<11}  colour {kiosk.session.color_name:<12} actions {len(kiosk.actions)}"
        + ("" if kiosk.camera.source.ok else "  [camera unavailable, retrying]"))))
    print(f"mirror demo: {'headless' if headless else 'window'}, {seconds:.0f} s on the bundled clip "
          f"({config.DEMO_CLIP.name}); scripted events are labelled on screen", flush=True)
    stats = kiosk.run(seconds)
    summary = {k: stats[k] for k in ("seconds", "frames", "mean_fps", "render_p95_ms", "vision_frames")}
    summary["actions"] = stats["actions"]
    summary["screenshots"] = timeline.screenshots
    if headless:
        summary["recording"] = str(out_dir / "demo.mp4")
    (out_dir / "stats.json").write_text(json.dumps(summary, indent=2))
    print("mirror demo: done", json.dumps(summary))
    return 0
