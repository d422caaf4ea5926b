"""The kiosk's own overlays: what the shopper sees of her session (buttons,
product card, colour ring, hand cursor, short messages), the red status bar,
the demo's banner and the debug lines.

Each overlay holds the small view it draws; the app replaces the view before
each frame. Features (the call, the checkout) bring their own overlays.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field

import cv2
import numpy as np
import pygame

from render.compositor import Compositor

MESSAGE_S = 2.5


CURSOR_ENGAGED = (90, 220, 140)     # RGB
CURSOR_IDLE = (170, 170, 170)


@dataclass
class ShopperView:
    cursor: tuple[float, float] | None = None      # normalised display coords
    cursor_progress: float = 0.0                    # dwell/hold progress 0..1
    cursor_engaged: bool = True                     # the hand is in her interaction zone: the mirror listens
    ring_active: bool = False
    ring_hue: float = 0.0
    color_bgr: tuple[int, int, int] = (40, 40, 200)
    color_name: str = ""
    product: str = ""
    product_detail: str = ""
    # on-screen buttons: label, (x, y, w, h) normalised, cursor over it, press progress 0..1
    controls: list[tuple[str, tuple[float, float, float, float], bool, float]] = field(default_factory=list)
    # a question card above the buttons that answer it (the member-profile question): title, hint
    question: tuple[str, str] | None = None


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
        if v.question:
            self._question(c, *v.question)
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
            if v.cursor_engaged:
                # listening: a bold green ring she learns to raise her hand for
                pygame.draw.circle(scr, CURSOR_ENGAGED, (x, y), round(30 * u), max(2, round(7 * u)))
                pygame.draw.circle(scr, (255, 255, 255), (x, y), round(9 * u))
            else:
                # seen but not listening: a thin grey ring, no centre
                pygame.draw.circle(scr, CURSOR_IDLE, (x, y), round(22 * u), max(1, round(2 * u)))
            if v.cursor_progress > 0:
                rect = pygame.Rect(0, 0, round(70 * u), round(70 * u))
                rect.center = (x, y)
                pygame.draw.arc(scr, (90, 220, 140), rect, math.pi / 2,
                                math.pi / 2 + 2 * math.pi * v.cursor_progress, max(2, round(8 * u)))

    def _question(self, c: Compositor, title: str, hint: str) -> None:
        # where a friend's knock card goes (call/overlay.py): the two never show at once
        ow, oh = c.size
        u = c.u
        r = pygame.Rect(round(60 * u), round(oh * 0.235), ow - round(120 * u), round(220 * u))
        c.panel(r, 215, (20, 30, 55))
        pygame.draw.rect(c.screen, (120, 170, 255), r, max(2, round(5 * u)), border_radius=round(14 * u))
        c.text(_fit(title, c.font_big, r.width - round(30 * u)), c.font_big, (r.centerx, r.y + round(75 * u)),
               center=True)
        c.text(_fit(hint, c.font_small, r.width - round(30 * u)), c.font_small, (r.centerx, r.y + round(160 * u)),
               center=True, color=(215, 225, 250))

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


@dataclass
class SuggestionsView:
    """The staff's suggestions carousel: cards as dicts (sku, name, price, image
    path, in_stock True/False/None) and the one shown; push_id names the push."""
    cards: list[dict] = field(default_factory=list)
    index: int = 0
    push_id: str = ""


SUGGESTIONS_HINT = "Swipe for more · thumbs-up to add · open palm to close"
# The band it takes, as fractions of the display's height: below the second row
# of buttons (mirror/core/controls.py, 0.36-0.535) and above the checkout's panel
# (nfc/overlay.py, from 0.66); the upper half is the face, the call's tile, its
# knock card and the colour ring.
SUGGESTIONS_BAND = (0.545, 0.655)
_IMAGE_CACHE = 64


class SuggestionsOverlay:
    """The current suggested card large (picture, name, price, whether it is in
    stock in her size), dots for the others, and how to use it. `drawn` is the
    (push_id, sku) on the last composed frame, or None: the push probe reads it."""
    z = 30

    def __init__(self, view: SuggestionsView | None = None):
        self.view = view
        self.drawn: tuple[str, str] | None = None
        self._images: OrderedDict[tuple[str, int], pygame.Surface | None] = OrderedDict()

    def draw(self, c: Compositor, now: float) -> None:
        v = self.view
        self.drawn = None
        if v is None or not v.cards:
            return
        card = v.cards[v.index % len(v.cards)]
        ow, oh = c.size
        u = c.u
        top, bottom = round(oh * SUGGESTIONS_BAND[0]), round(oh * SUGGESTIONS_BAND[1])
        r = pygame.Rect(round(50 * u), top, ow - round(100 * u), bottom - top)
        c.panel(r, 205, (18, 18, 26))
        pygame.draw.rect(c.screen, (235, 235, 240), r, max(1, round(3 * u)), border_radius=round(14 * u))
        pad = max(2, round(14 * u))
        hint_h = c.font_small.get_height()
        side = max(4, r.height - 2 * pad - hint_h - round(6 * u))
        pic = pygame.Rect(r.x + pad, r.y + pad, side, side)
        img = self._image(str(card.get("image") or ""), side)
        if img is not None:
            c.screen.blit(img, img.get_rect(center=pic.center))
        else:                                       # no picture: a plain tile with the initial
            pygame.draw.rect(c.screen, (70, 70, 82), pic, border_radius=round(10 * u))
            name = str(card.get("name") or card.get("sku") or "?")
            c.text(name[:1].upper(), c.font_big, pic.center, center=True, color=(200, 200, 210))
        x = pic.right + round(24 * u)
        width = r.right - pad - x
        c.text(_fit(str(card.get("name") or card.get("sku") or ""), c.font, width), c.font, (x, r.y + pad))
        y = r.y + pad + round(54 * u)
        price = str(card.get("price") or "")
        if price:
            c.text(price, c.font, (x, y))
        stock = card.get("in_stock")
        if stock is not None:
            label, colour = (("In stock in your size", (90, 220, 140)) if stock
                             else ("Not in your size", (250, 190, 60)))
            sx = x + (c.font.size(price)[0] + round(28 * u) if price else 0)
            c.text(_fit(label, c.font_small, r.right - pad - sx), c.font_small, (sx, y + round(8 * u)),
                   color=colour)
        if len(v.cards) > 1:
            dy = y + round(80 * u)
            for i in range(len(v.cards)):
                centre = (x + round(9 * u) + i * round(28 * u), dy)
                if i == v.index % len(v.cards):
                    pygame.draw.circle(c.screen, (255, 255, 255), centre, max(2, round(8 * u)))
                else:
                    pygame.draw.circle(c.screen, (150, 150, 160), centre, max(2, round(8 * u)), max(1, round(2 * u)))
        c.text(_fit(SUGGESTIONS_HINT, c.font_small, r.width - 2 * pad), c.font_small,
               (r.centerx, r.bottom - pad - hint_h // 2), center=True, color=(200, 200, 210))
        self.drawn = (v.push_id, str(card.get("sku") or ""))

    def _image(self, path: str, side: int) -> pygame.Surface | None:
        """The product picture fitted into side x side, decoded once per path
        (None, also cached, when it is missing or cannot be decoded)."""
        if not path:
            return None
        key = (path, side)
        if key in self._images:
            self._images.move_to_end(key)
            return self._images[key]
        surf = None
        try:
            bgr = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)
            if bgr is not None and bgr.size:
                h, w = bgr.shape[:2]
                scale = side / max(h, w)
                size = (max(1, round(w * scale)), max(1, round(h * scale)))
                rgb = cv2.cvtColor(cv2.resize(bgr, size, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
                surf = pygame.image.frombytes(np.ascontiguousarray(rgb).tobytes(), size, "RGB")
        except Exception:                           # a broken file must never stop the frame
            surf = None
        self._images[key] = surf
        while len(self._images) > _IMAGE_CACHE:
            self._images.popitem(last=False)
        return surf


def _fit(text: str, font, width: int) -> str:
    """`text`, cut with an ellipsis so that it fits `width` pixels."""
    if font.size(text)[0] <= width:
        return text
    while text and font.size(text + "…")[0] > width:
        text = text[:-1]
    return text.rstrip() + "…" if text else ""


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
