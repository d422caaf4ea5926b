"""The one list of shopper actions: what a gesture, a swipe or a button can
ask for, and the short message the mirror shows when it happens (None: the
screen shows the result itself, such as the new colour)."""

from __future__ import annotations

from typing import Literal, get_args

Action = Literal["none", "next_color", "prev_color", "confirm", "cancel", "help", "call_staff",
                 "toggle_debug", "call_friend", "hang_up", "select", "pick_size", "reserve"]
ACTIONS: tuple[str, ...] = get_args(Action)

MESSAGES: dict[str, str | None] = {
    "none": None,
    "next_color": None,
    "prev_color": None,
    "confirm": "Saved this look",
    "cancel": "Cancelled",
    "help": "Draw a circle with one finger to change the colour · swipe for the next colour",
    "call_staff": "A member of staff is on the way",
    "toggle_debug": None,
    "call_friend": None,
    "hang_up": "Call ended",
    "select": "Selected",
    "pick_size": "Pick a size: a member of staff will bring it",
    "reserve": None,
}
assert set(MESSAGES) == set(ACTIONS), "every action has exactly one entry here"
