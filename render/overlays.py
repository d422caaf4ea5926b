"""The kiosk's own overlays: what the shopper sees of her session (buttons,
product card, colour ring, hand cursor, short messages), the red status bar,
the demo's banner and the debug lines.

Each overlay holds the small view it draws; the app replaces the view before
each frame. Features (the call, the checkout) bring their own overlays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np
import pygame

from render.compositor import Compositor

MESSAGE_S = 2.5


@dataclass
class ShopperView:
    cursor: tuple[float, float] | None = None      # normalised display coords
    cursor_progress: float = 0.0                    # dwell/hold progress 0..1
    ring_active: bool = False
    ring_hue: float = 0.0
    color_bgr: tuple[int, int, int] = (40, 40, 200)
    color_name: str = ""
    product: str = ""
    product_detail: str = ""
    # on-screen buttons: label, (x, y, w, h) normalised, cursor over it, press progress 0..1
    controls: list[tuple[str, tuple[float, float, float, float], bool, float]] = field(default_factory=list)


class ShopperOverlay:
    """Buttons, product card, colour ring and hand cursor."""
    z = 10

    def __init__(self, view: ShopperView | None = None):
        self.view = view or ShopperView()
        self._ring: pygame.Surface | None = None

    def draw(self, c: Compositor, now: float) -> None:
        v = self.view
        ow, oh = c.size
        u = c.u
        scr = c.screen
        for label, (x, y, w, h), hot, progress in v.controls:
            r = pygame.Rect(round(x * ow), round(y * oh), round(w * ow), round(h * oh))
            c.panel(r, 190 if hot else 120, (20, 60, 110) if hot else (0, 0, 0))
            if progress > 0:                  # fills left to right while the hand holds still
                fill = r.copy()
                fill.width = max(1, round(r.width * min(1.0, progress)))
                c.panel(fill, 150, (40, 150, 255))
            pygame.draw.rect(scr, (255, 255, 255), r, max(1, round((4 if hot else 2) * u)),
                             border_radius=round(10 * u))
            c.text(label, c.font_small, r.center, center=True, shadow=True)
        if v.product:
            self._card(c)
        if v.ring_active:
            if self._ring is None:
                self._ring = _make_ring(round(150 * u))
            cx, cy = ow // 2, round(oh * 0.3)
            rect = self._ring.get_rect(center=(cx, cy))
            scr.blit(self._ring, rect)
            ang = math.radians(v.ring_hue - 90.0)
            rr = self._ring.get_width() / 2 * 0.89
            mx, my = cx + rr * math.cos(ang), cy + rr * math.sin(ang)
            pygame.draw.circle(scr, (255, 255, 255), (round(mx), round(my)), round(22 * u), round(5 * u) or 1)
            b, g, r = v.color_bgr
            pygame.draw.circle(scr, (r, g, b), (cx, cy), round(95 * u))
            pygame.draw.circle(scr, (255, 255, 255), (cx, cy), round(95 * u), max(1, round(4 * u)))
            c.text(v.color_name, c.font, (cx, cy + rect.height // 2 + round(40 * u)), center=True, shadow=True)
        if v.cursor is not None:
            x, y = round(v.cursor[0] * ow), round(v.cursor[1] * oh)
            pygame.draw.circle(scr, (255, 255, 255), (x, y), round(26 * u), max(1, round(5 * u)))
            pygame.draw.circle(scr, (255, 255, 255), (x, y), round(7 * u))
            if v.cursor_progress > 0:
                rect = pygame.Rect(0, 0, round(70 * u), round(70 * u))
                rect.center = (x, y)
                pygame.draw.arc(scr, (90, 220, 140), rect, math.pi / 2,
                                math.pi / 2 + 2 * math.pi * v.cursor_progress, max(2, round(8 * u)))

    def _card(self, c: Compositor) -> None:
        v = self.view
        ow, _ = c.size
        u = c.u
        rect = pygame.Rect(round(30 * u), round(30 * u), ow - round(60 * u), round(190 * u))
        c.panel(rect, 160)
        b, g, r = v.color_bgr
        sw = pygame.Rect(rect.x + round(24 * u), rect.y + round(30 * u), round(130 * u), round(130 * u))
        pygame.draw.rect(c.screen, (r, g, b), sw, border_radius=round(18 * u))
        c.text(v.product, c.font, (sw.right + round(30 * u), rect.y + round(40 * u)))
        c.text(v.product_detail, c.font_small, (sw.right + round(30 * u), rect.y + round(105 * u)),
               color=(220, 220, 220))


class MessageOverlay:
    """A short message that fades after MESSAGE_S, and the idle hint. Above
    the features' cards, so "Cancelled" is never hidden by one."""
    z = 60

    def __init__(self):
        self.message = ""
        self.message_t = -1e9                       # monotonic time it appeared
        self.hint = ""

    def draw(self, c: Compositor, now: float) -> None:
        oh = c.size[1]
        age = now - self.message_t
        if self.message and age < MESSAGE_S:
            fade = 1.0 if age < MESSAGE_S - 0.5 else (MESSAGE_S - age) / 0.5
            c.toast(self.message, round(oh * 0.62), fade)
        if self.hint:
            c.toast(self.hint, round(oh * 0.86), 0.9, small=True)


class StatusOverlay:
    """A red bar for what is wrong with the kiosk ("camera unavailable, retrying: ...")."""
    z = 80

    def __init__(self):
        self.text = ""

    def draw(self, c: Compositor, now: float) -> None:
        if not self.text:
            return
        ow, oh = c.size
        u = c.u
        # First line big ("camera unavailable, retrying"), the reason small below.
        head, _, detail = self.text.partition(": ")
        r = pygame.Rect(0, round(oh * 0.42), ow, round(150 * u))
        c.panel(r, 200, (150, 30, 30))
        c.text(head[:1].upper() + head[1:], c.font, (r.centerx, r.y + round(50 * u)), center=True)
        if detail:
            c.text(detail[:70], c.font_small, (r.centerx, r.y + round(108 * u)), center=True)


class BannerOverlay:
    """A bottom banner: the demo says here which events are scripted."""
    z = 90

    def __init__(self):
        self.text = ""
        self.until = 0.0

    def show(self, text: str, now: float, seconds: float = 2.5) -> None:
        self.text, self.until = text, now + seconds

    def draw(self, c: Compositor, now: float) -> None:
        if not self.text or now >= self.until:
            return
        ow, oh = c.size
        u = c.u
        r = pygame.Rect(0, oh - round(70 * u), ow, round(70 * u))
        c.panel(r, 170, (30, 30, 90))
        c.text(self.text, c.font_small, r.center, center=True)


class DebugOverlay:
    z = 95

    def __init__(self):
        self.lines: list[str] = []

    def draw(self, c: Compositor, now: float) -> None:
        u = c.u
        y = round(240 * u)
        for line in self.lines:
            c.text(line, c.font_small, (round(20 * u), y), shadow=True, color=(180, 255, 180))
            y += round(38 * u)


def _make_ring(r: int) -> pygame.Surface:
    """The hue wheel shown while she circles: an annulus of every hue."""
    d = 2 * r + 2
    yy, xx = np.mgrid[0:d, 0:d].astype(np.float32) - r
    rad = np.hypot(xx, yy)
    hue = (np.degrees(np.arctan2(yy, xx)) + 90.0) % 360.0
    hsv = np.dstack([hue / 2, np.full_like(hue, 220), np.full_like(hue, 240)]).astype(np.uint8)
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    inside = (rad <= r) & (rad >= r * 0.78)
    surf = pygame.Surface((d, d), pygame.SRCALPHA)
    arr = np.zeros((d, d, 4), np.uint8)
    arr[..., :3] = rgb
    arr[..., 3] = np.where(inside, 230, 0)
    pygame.surfarray.blit_array(surf, arr[..., :3].transpose(1, 0, 2))
    alpha = pygame.surfarray.pixels_alpha(surf)
    alpha[...] = arr[..., 3].T
    del alpha
    return surf
