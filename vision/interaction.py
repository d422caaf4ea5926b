"""From per-frame hand observations to input events. Pure code, no I/O.

`HandInput.update()` takes the hands seen in one frame and returns the events
that frame produces: the cursor, discrete gestures (after hysteresis), circle
angles, swipes and dwell presses. The kiosk publishes them on the bus.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vision import engagement as E
from vision import gestures as G
from vision.hands import Hand
from vision.motions import CircleTracker, DwellDetector, SwipeDetector

# `update(..., body=UNKNOWN)`: the caller has no body model (photos, hand-only
# tests), so no engagement is asked for. The kiosk passes a Body or None.
UNKNOWN = object()
HOLD_DRIFT = 0.8     # a held gesture whose palm wanders this many palm sizes starts its hold over


@dataclass(frozen=True)
class InputEvent:
    name: str          # gesture.fired, motion.circle, motion.swipe, cursor.dwell
    data: dict


class HandInput:
    def __init__(self, gcfg, *, mirror: bool = True, to_display=None, control_at=None):
        """`gcfg`: a GesturesConfig. `to_display(x, y)` maps normalised camera
        coords to normalised display coords (defaults to a plain mirror).
        `control_at(x, y)` names the on-screen control under a display point,
        or None; a hand held still elsewhere presses nothing and shows no
        progress. Without it there are no controls and nothing is pressed."""
        self.control_at = control_at or (lambda x, y: None)
        self._target: str | None = None        # the control the hold is on
        self._armed = True                     # False after a press until the hand leaves the controls
        self.cfg = gcfg
        self.to_display = to_display or ((lambda x, y: (1.0 - x, y)) if mirror else (lambda x, y: (x, y)))
        self.filter = G.GestureFilter(gcfg.hold_frames, gcfg.cooldown_s, gcfg.min_score, gcfg.hold_s)
        self.engagement = E.Engagement(E.Zone.from_config(gcfg))
        self.engaged = False                   # the main hand is addressing the mirror (the cursor shows it)
        self._anchor: tuple[str, float, float] | None = None    # held gesture, palm x, y where its hold began
        self.circle = CircleTracker(min_radius=gcfg.circle_min_radius)
        self.swipe = SwipeDetector(gcfg.swipe_min_distance, gcfg.swipe_max_s)
        self.dwell = DwellDetector(gcfg.dwell_s)
        self.cursor: tuple[float, float] | None = None
        self.cursor_progress = 0.0
        self.classification = G.Classification("none", 1.0)
        self._prev_palm: tuple[float, float, float] | None = None

    def update(self, hands: list[Hand], t: float, body=UNKNOWN) -> list[InputEvent]:
        """`body`: the shopper's E.Body (None: nobody seen), or UNKNOWN for no
        engagement check. With a body, gestures and circles count only from an
        engaged hand, and buttons only from a raised hand of someone facing the mirror."""
        events: list[InputEvent] = []
        if not hands:
            self.engagement.reset()
            self.engaged = False
            self._anchor = None
            self.cursor = None
            self.cursor_progress = 0.0
            self.circle.reset()
            self.swipe.reset()
            self.dwell.reset()
            self._target, self._armed = None, True
            self._prev_palm = None
            self.classification = G.Classification("none", 1.0)
            self.filter.update(self.classification, t)
            return events
        gate = body is not UNKNOWN and self.cfg.engage
        zone = self.engagement.zone
        if gate and body is not None:
            # a hand in her zone drives, before a bigger one elsewhere
            hands = [h for h in hands if E.in_zone(body, h.points, h.frame_size, zone)] or hands
        # The biggest hand (nearest the mirror) drives everything.
        main = max(hands, key=lambda h: float(np.linalg.norm(h.points[9, :2] - h.points[0, :2])))
        shape = G.measure(main.points)
        if gate:                               # only the engaged hand speaks, judged as strictly as a photo
            self.classification = G.classify(main.points, self.cfg.min_score, strict=True)
        else:
            self.classification = G.best_of([G.classify(h.points, self.cfg.min_score) for h in hands])
        if gate:
            self.engaged = self.engagement.update(body, main.points, main.frame_size, t)
            # an index finger up at her lips is "shh"; a thumbs-up by her chin is still one
            hush = (body is not None and shape.index > 0.6
                    and E.on_lips(body, main.points, main.frame_size))
            can_press = (body is not None and body.facing and not hush
                         and E.raised(body, main.points, main.frame_size, zone))
            if hush or not E.orientation_ok(self.classification.gesture, main.points):
                self.classification = G.Classification("none", self.classification.score)
        else:
            self.engaged, can_press = True, True
        pc = E.palm_centre(main.points, main.frame_size)
        held = self.classification.gesture
        if self._anchor is None or self._anchor[0] != held:
            self._anchor = (held, float(pc[0]), float(pc[1]))
        drift = math.hypot(pc[0] - self._anchor[1], pc[1] - self._anchor[2]) / max(
            1e-6, E.palm_size(main.points, main.frame_size))
        norm = main.normalised()
        tip = self.to_display(float(norm[8, 0]), float(norm[8, 1]))
        palm = self.to_display(float(norm[9, 0]), float(norm[9, 1]))
        self.cursor = tip
        speed = 0.0
        if self._prev_palm is not None and t > self._prev_palm[2]:
            speed = math.hypot(palm[0] - self._prev_palm[0], palm[1] - self._prev_palm[1]) / (t - self._prev_palm[2])
        self._prev_palm = (palm[0], palm[1], t)

        pointing = shape.index > 0.6 and shape.middle < 0.5 and shape.ring < 0.5
        pointing = pointing and self.engaged
        circle = self.circle.update(*tip, t) if pointing else None
        if not pointing:
            self.circle.reset()
        if circle is not None:
            events.append(InputEvent("motion.circle", {"delta_deg": circle.delta_deg, "total_deg": circle.total_deg}))
        flat = sum(e > 0.6 for e in (shape.index, shape.middle, shape.ring, shape.pinky)) >= 3
        if flat and not self.circle.active and self.engaged:
            sw = self.swipe.update(*palm, t)
            if sw is not None:
                events.append(InputEvent("motion.swipe", {"direction": sw.direction}))
        else:
            self.swipe.reset()

        # A moving hand is not holding a gesture: this keeps circles and swipes
        # from firing `pointing_up` or `open_palm` on the way.
        moving = speed > 0.6 or self.circle.active
        if drift > HOLD_DRIFT:                 # a gesture carried along (talking hands) is not held
            moving = True
            self._anchor = (held, float(pc[0]), float(pc[1]))
        progress, pressed, target = self._press(shape, tip, t, can_press)
        # A hand pressing a button is not showing a gesture: pointing at
        # "Next colour" must not also fire pointing_up's action.
        shown = self.classification if self.engaged else G.Classification("none", 1.0)
        fired = self.filter.update(shown, t, moving=moving or target is not None)
        if fired:
            events.append(InputEvent("gesture.fired", {"gesture": fired, "score": self.classification.score}))
        self.cursor_progress = progress if not moving else 0.0
        if pressed:
            events.append(InputEvent("cursor.dwell", {"x": tip[0], "y": tip[1], "control": target}))
        return events

    @property
    def hold_progress(self) -> float:
        """How far an engaged hand's gesture has been held toward firing, 0..1."""
        return self.filter.holding[1] if self.engaged else 0.0

    @property
    def target(self) -> str | None:
        """The control an aiming hand is on now (for the screen to light it up)."""
        return self._target

    def _press(self, shape, tip, t: float, can_press: bool = True) -> tuple[float, bool, str | None]:
        """Dwell on a control: (progress, pressed now, the control aimed at)."""
        # Pressing is done with an extended index (pointing, or a flat hand):
        # a thumbs-up or fist that happens to rest on a button is a gesture.
        # Buttons sit anywhere on the screen, so a raised hand may reach past her zone's sides.
        aiming = can_press and shape.index > 0.6 and self.classification.gesture in ("none", "pointing_up", "open_palm")
        target = self.control_at(*tip) if aiming else None
        if target is None:
            self._armed = True                 # left the controls: the next press may come
        if target != self._target:
            self.dwell.reset()                 # a new control (or the one under her changed) starts over
            self._target = target
        if target is None or not self._armed:
            return 0.0, False, target
        progress, pressed = self.dwell.update(*tip, t)
        if pressed:
            # one press per visit: the screen may change under the still hand
            # (the knock card's "Let in" becomes "Hang up"), which must not press again
            self._armed = False
        return progress, pressed, target
