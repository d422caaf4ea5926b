"""On-screen controls pressed by holding a hand still over them. Pure code.

Which controls show depends only on the session's state (a friend knocking,
in a call, or neither). Positions are normalised display coordinates, at the
height a raised hand naturally reaches and out to the sides, so that reaching
for one does not cover the garment. A press is a `cursor.dwell` event that
lands on a control; the session turns it into the control's action.
"""

from __future__ import annotations

from dataclasses import dataclass

# x, y, w, h of the four slots, normalised to the portrait display
_W, _H = 0.24, 0.065
LEFT_X, RIGHT_X = 0.03, 1.0 - 0.03 - _W
ROW_0, ROW_1, ROW_2, ROW_3 = 0.25, 0.36, 0.47, 0.58
# the size picker's slots, in reading order; the last one is "Back"
PICKER_SLOTS = [(x, y) for y in (ROW_0, ROW_1, ROW_2, ROW_3) for x in (LEFT_X, RIGHT_X)]
PICKER_SIZES_MAX = len(PICKER_SLOTS) - 1
# a hand that drifts a little past the edge of a control still counts
HIT_MARGIN = 0.02


@dataclass(frozen=True)
class Control:
    id: str
    label: str
    action: str                                  # a session action (see mirror.core.config.ACTIONS)
    rect: tuple[float, float, float, float]      # x, y, w, h, normalised
    arg: str = ""                                # the size, for the size picker's buttons

    def contains(self, x: float, y: float, margin: float = HIT_MARGIN) -> bool:
        rx, ry, rw, rh = self.rect
        return rx - margin <= x <= rx + rw + margin and ry - margin <= y <= ry + rh + margin


def visible_controls(present: bool, knocking: str = "", in_call: str = "", *, asking_consent: bool = False,
                     sizes: tuple[str, ...] | None = None, size: str = "") -> list[Control]:
    """The controls on screen for this state; none while nobody is there.

    A friend's knock comes first, then the member-profile question, then the
    size picker (`sizes` given: one button per size, at most PICKER_SIZES_MAX,
    and Back), then the usual buttons."""
    if not present:
        return []
    if knocking:
        return [Control("decline", "Decline", "cancel", (LEFT_X, ROW_2, _W, _H)),
                Control("admit", f"Let {knocking} in"[:18], "confirm", (RIGHT_X, ROW_2, _W, _H))]
    if asking_consent:
        return [Control("consent_no", "No, thanks", "cancel", (LEFT_X, ROW_2, _W, _H)),
                Control("consent_yes", "Yes, show it", "confirm", (RIGHT_X, ROW_2, _W, _H))]
    if sizes is not None:
        shown = list(sizes[:PICKER_SIZES_MAX])
        out = [Control(f"size:{sz}", f"Size {sz}" + (" (now)" if sz == size else ""), "ask_size", (x, y, _W, _H), sz)
               for sz, (x, y) in zip(shown, PICKER_SLOTS)]
        x, y = PICKER_SLOTS[len(shown)]
        return out + [Control("picker_back", "Back", "close_sizes", (x, y, _W, _H))]
    controls = [Control("sizes", f"Size {size}" if size else "Sizes", "pick_size", (LEFT_X, ROW_0, _W, _H)),
                Control("reserve", "Put one aside", "reserve", (RIGHT_X, ROW_0, _W, _H)),
Control("prev_color", "Previous colour", "prev_color", (LEFT_X, ROW_1, _W, _H)),
                Control("next_color", "Next colour", "next_color", (RIGHT_X, ROW_1, _W, _H)),
                Control("help", "Help", "help", (LEFT_X, ROW_2, _W, _H))]
    if in_call:
        controls.append(Control("hang_up", "Hang up", "hang_up", (RIGHT_X, ROW_2, _W, _H)))
    else:
        controls.append(Control("call_friend", "Call a friend", "call_friend", (RIGHT_X, ROW_2, _W, _H)))
    return controls


def control_at(controls: list[Control], x: float, y: float) -> Control | None:
    """The control under a cursor; the nearest centre wins if margins overlap."""
    hits = [c for c in controls if c.contains(x, y)]
    if not hits:
        return None

    def dist(c: Control) -> float:
        rx, ry, rw, rh = c.rect
        return (x - rx - rw / 2) ** 2 + (y - ry - rh / 2) ** 2
    return min(hits, key=dist)
