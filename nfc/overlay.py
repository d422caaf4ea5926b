"""The checkout's overlay: the panel that confirms an order (with the till
code), asks to tap again or says what went wrong, and the reader's status line.
It draws the `CheckoutView` that the pure state machine (nfc/checkout.py)
describes; the service hands it a new view before each frame."""

from __future__ import annotations

import pygame

from nfc.checkout import CheckoutView
from render.compositor import Compositor

COLOURS = {"confirmed": (90, 220, 140), "saving": (200, 200, 200), "refused": (250, 190, 60),
           "retry": (250, 190, 60), "cancelled": (200, 200, 200), "error": (235, 80, 80)}


class CheckoutOverlay:
    z = 50

    def __init__(self):
        self.view: CheckoutView | None = None
        self._font_code: pygame.font.Font | None = None

    def draw(self, c: Compositor, now: float) -> None:
        v = self.view
        if v is None:
            return
        ow, oh = c.size
        u = c.u
        if v.kind != "status":
            if self._font_code is None:
                self._font_code = pygame.font.Font(None, max(16, round(130 * u)))
            width = ow - round(130 * u)
            title = c.wrap(v.title, c.font_big, width)
            lines = [ln for line in v.lines for ln in c.wrap(line, c.font_small, width)]
            h = (round(40 * u) + len(title) * round(70 * u) + len(lines) * round(42 * u)
                 + (round(130 * u) if v.code else 0) + round(20 * u))
            r = pygame.Rect(round(50 * u), round(oh * 0.66), ow - round(100 * u), h)
            if r.bottom > oh - round(80 * u):
                r.bottom = oh - round(80 * u)
            c.panel(r, 215, (10, 20, 15))
            accent = COLOURS.get(v.kind, (200, 200, 200))
            pygame.draw.rect(c.screen, accent, r, max(2, round(5 * u)), border_radius=round(14 * u))
            y = r.y + round(25 * u)
            for line in title:
                c.text(line, c.font_big, (r.centerx, y + round(32 * u)), center=True)
                y += round(70 * u)
            for i, line in enumerate(lines):
                c.text(line, c.font_small, (r.centerx, y + round(20 * u)), center=True, color=(215, 230, 220))
                y += round(42 * u)
                if v.code and i == 0:           # "Pay at the till with this code:" then the code
                    c.text(v.code, self._font_code, (r.centerx, y + round(60 * u)), center=True, color=accent)
                    y += round(130 * u)
        if v.status:
            c.text(v.status[:80], c.font_small, (round(30 * u), oh - round(130 * u)), shadow=True,
                   color=(250, 190, 60))
