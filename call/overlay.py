"""The friend call's overlay: the join QR code, the "wants to join" card, the
friend's video tile and her reactions floating up. It draws a `CallView`,
which the call service refreshes before each frame."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import pygame

from mirror.core.text import without_controls
from render.compositor import Compositor


@dataclass
class CallView:
    """What the friend call shows on the mirror."""
    status: str = ""                                # "Connecting to Jane…", "Friend calls unavailable: …"
    link: str = ""                                  # a join link to show as a QR code
    knocking: str = ""                              # a friend waiting to be let in
    friend: str = ""                                # the friend in the call
    tile: np.ndarray | None = None                  # her newest video frame, BGR, tile-sized
    reactions: list[tuple[str, str, str, float]] = field(default_factory=list)   # name, kind, text, age s


class CallOverlay:
    z = 40

    def __init__(self):
        self.view: CallView | None = None
        self._qr: tuple[str, pygame.Surface] | None = None

    def draw(self, c: Compositor, now: float) -> None:
        call = self.view
        if call is None:
            return
        ow, oh = c.size
        u = c.u
        scr = c.screen
        tw = call.tile.shape[1] if call.tile is not None else round(ow * 0.32)
        tile_rect = pygame.Rect(ow - tw - round(30 * u), round(250 * u), tw, round(tw * 9 / 16))
        if call.friend:
            if call.tile is not None:
                img = call.tile
                tile_rect.h = img.shape[0]
                scr.blit(pygame.image.frombuffer(np.ascontiguousarray(img), (img.shape[1], img.shape[0]), "BGR"),
                         tile_rect)
            else:
                c.panel(tile_rect, 200, (20, 20, 30))
                c.text(call.friend[:1].upper(), c.font_big, tile_rect.center, center=True)
            pygame.draw.rect(scr, (255, 255, 255), tile_rect, max(1, round(3 * u)), border_radius=round(8 * u))
            c.text(call.friend, c.font_small, (tile_rect.x + round(10 * u), tile_rect.bottom + round(8 * u)),
                       shadow=True)
        if call.status:
            c.text(call.status[:60], c.font_small, (ow - round(30 * u), tile_rect.bottom + round(50 * u)),
                       shadow=True, right=True)
        for i, (name, kind, text, age) in enumerate(call.reactions):
            self._reaction(c, name, kind, text, age, tile_rect)
        if call.knocking:
            # above the rows of buttons (mirror/controls.py), whose "Let in" and
            # "Decline" answer it
            r = pygame.Rect(round(60 * u), round(oh * 0.235), ow - round(120 * u), round(220 * u))
            c.panel(r, 215, (15, 40, 25))
            pygame.draw.rect(scr, (90, 220, 140), r, max(2, round(5 * u)), border_radius=round(14 * u))
            c.text(f"{call.knocking} wants to join", c.font_big, (r.centerx, r.y + round(75 * u)), center=True)
            c.text("Thumbs-up or the button to let them in · fist to decline", c.font_small,
                       (r.centerx, r.y + round(160 * u)), center=True, color=(210, 240, 220))
        if call.link:
            self._draw_qr(c, call.link)

    def _reaction(self, c: Compositor, name: str, kind: str, text: str, age: float, anchor: pygame.Rect) -> None:
        u = c.u
        rise = min(1.0, age / 3.0)
        alpha = 255 if age < 2.5 else max(0, round(255 * (3.5 - age)))
        x = anchor.right - round(20 * u)
        # rise from just above the buttons' first row (mirror/controls.py) toward the tile
        y = anchor.bottom + round(200 * u) - round(160 * u * rise)
        label = {"like": f"{name} likes it", "love": f"{name} loves it"}.get(kind, f"{name}: {text}")
        img = c.font_small.render(without_controls(label), True, (255, 255, 255))
        icon = round(44 * u)
        rect = pygame.Rect(0, 0, img.get_width() + icon + round(36 * u), max(icon, img.get_height()) + round(16 * u))
        rect.topright = (x, y)
        bubble = pygame.Surface(rect.size, pygame.SRCALPHA)
        bubble.fill((0, 0, 0, 0))
        pygame.draw.rect(bubble, (0, 0, 0, min(190, alpha)), bubble.get_rect(), border_radius=rect.h // 2)
        cx, cy = round(12 * u) + icon // 2, rect.h // 2
        if kind == "love":
            r = icon // 4
            col = (235, 60, 90, alpha)
            pygame.draw.circle(bubble, col, (cx - r, cy - r // 2), r)
            pygame.draw.circle(bubble, col, (cx + r, cy - r // 2), r)
            pygame.draw.polygon(bubble, col, [(cx - 2 * r, cy - r // 3), (cx + 2 * r, cy - r // 3), (cx, cy + 2 * r)])
        elif kind == "like":
            pygame.draw.circle(bubble, (60, 130, 240, alpha), (cx, cy), icon // 2)
            plus = c.font_small.render("+1", True, (255, 255, 255))
            bubble.blit(plus, plus.get_rect(center=(cx, cy)))
        else:
            pygame.draw.circle(bubble, (250, 190, 60, alpha), (cx, cy), icon // 2)
        img.set_alpha(alpha)
        bubble.blit(img, (icon + round(24 * u), (rect.h - img.get_height()) // 2))
        c.screen.blit(bubble, rect)

    def _draw_qr(self, c: Compositor, url: str) -> None:
        ow, oh = c.size
        u = c.u
        side = round(300 * u)
        if self._qr is None or self._qr[0] != url:
            import segno
            m = np.array(segno.make(url, error="m").matrix, dtype=np.uint8)
            m = np.pad(m, 2)                                   # quiet zone
            img = np.where(m[..., None] > 0, 0, 255).astype(np.uint8).repeat(3, axis=2)
            img = cv2.resize(img, (side, side), interpolation=cv2.INTER_NEAREST)
            self._qr = (url, pygame.image.frombuffer(img.tobytes(), (side, side), "RGB"))
        r = pygame.Rect(ow - side - round(60 * u), round(oh * 0.66), side + round(30 * u), side + round(110 * u))
        c.panel(r, 200)
        c.screen.blit(self._qr[1], (r.x + round(15 * u), r.y + round(15 * u)))
        c.text("Scan to invite a friend", c.font_small, (r.centerx, r.bottom - round(60 * u)), center=True)
        host = url.split("//", 1)[-1].split("/", 1)[0]
        c.text(host, c.font_small, (r.centerx, r.bottom - round(25 * u)), center=True, color=(200, 200, 200))
