"""The pygame compositor: a portrait, mirrored picture with the kiosk's overlays.

`Compositor.compose(frame, ui)` draws one output picture from a BGR camera
frame (already recoloured) and a `UiState`, a plain description of what the
overlays should show. It knows nothing about gestures or sessions. Headless
with SDL_VIDEODRIVER=dummy; `snapshot()` returns the picture as an RGB array.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame  # noqa: E402


@dataclass
class UiState:
    cursor: tuple[float, float] | None = None      # normalised display coords
    cursor_progress: float = 0.0                    # dwell/hold progress 0..1
    ring_active: bool = False
    ring_hue: float = 0.0
    color_bgr: tuple[int, int, int] = (40, 40, 200)
    color_name: str = ""
    message: str = ""
    message_age: float = 99.0                       # seconds since the message appeared
    hint: str = ""
    product: str = ""
    product_detail: str = ""
    status: str = ""                                # e.g. "camera unavailable, retrying"
    banner: str = ""                                # e.g. demo timeline notice
    debug_lines: list[str] = field(default_factory=list)
    controls: list[tuple[str, tuple[float, float, float, float]]] = field(default_factory=list)


MESSAGE_S = 2.5


def crop_box(frame_size: tuple[int, int], out_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The centre part (x0, y0, width, height) of a camera frame that the
    portrait view shows: the frame cropped to the output's aspect ratio."""
    fw, fh = frame_size
    ow, oh = out_size
    aspect = ow / oh
    if fw / fh > aspect:
        cw, ch = max(1, round(fh * aspect)), fh
    else:
        cw, ch = fw, max(1, round(fw / aspect))
    return (fw - cw) // 2, (fh - ch) // 2, cw, ch


def view_transform(frame_size: tuple[int, int], out_size: tuple[int, int], mirror: bool):
    """Maps normalised camera coords to normalised display coords."""
    fw, fh = frame_size
    x0, y0, cw, ch = crop_box(frame_size, out_size)

    def to_display(x: float, y: float) -> tuple[float, float]:
        dx = (x * fw - x0) / cw
        dy = (y * fh - y0) / ch
        return (1.0 - dx if mirror else dx), dy

    return to_display


class Compositor:
    def __init__(self, width: int = 1080, height: int = 1920, *, mirror: bool = True,
                 fullscreen: bool = False, headless: bool | None = None, title: str = "Smart mirror"):
        if headless is None:
            headless = not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY")
        if headless:
            os.environ["SDL_VIDEODRIVER"] = "dummy"
        os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
        self.size = (width, height)
        self.mirror = mirror
        self.headless = headless
        pygame.display.init()
        pygame.font.init()
        flags = pygame.FULLSCREEN if fullscreen and not headless else 0
        pygame.display.set_caption(title)
        self.screen = pygame.display.set_mode(self.size, flags)
        if not headless:
            pygame.mouse.set_visible(False)
        u = height / 1920
        self.u = u
        self.font_big = pygame.font.Font(None, max(12, round(72 * u)))
        self.font = pygame.font.Font(None, max(10, round(48 * u)))
        self.font_small = pygame.font.Font(None, max(9, round(34 * u)))
        self._ring = self._make_ring(round(150 * u))

    def _make_ring(self, r: int) -> pygame.Surface:
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

    def frame_surface(self, frame_bgr: np.ndarray) -> pygame.Surface:
        ow, oh = self.size
        x0, y0, cw, ch = crop_box((frame_bgr.shape[1], frame_bgr.shape[0]), self.size)
        view = frame_bgr[y0:y0 + ch, x0:x0 + cw]
        if self.mirror:
            view = cv2.flip(view, 1)
        view = cv2.resize(view, (ow, oh), interpolation=cv2.INTER_LINEAR)
        return pygame.image.frombuffer(view.tobytes(), (ow, oh), "BGR")

    def compose(self, frame_bgr: np.ndarray | None, ui: UiState) -> pygame.Surface:
        scr = self.screen
        if frame_bgr is None:
            scr.fill((12, 12, 16))
        else:
            scr.blit(self.frame_surface(frame_bgr), (0, 0))
        ow, oh = self.size
        u = self.u
        for name, (x, y, w, h) in ui.controls:
            r = pygame.Rect(round(x * ow), round(y * oh), round(w * ow), round(h * oh))
            self._panel(r, 150)
            self._text(name, self.font_small, r.center, center=True)
        if ui.product:
            self._card(ui)
        if ui.ring_active:
            cx, cy = ow // 2, round(oh * 0.3)
            rect = self._ring.get_rect(center=(cx, cy))
            scr.blit(self._ring, rect)
            ang = math.radians(ui.ring_hue - 90.0)
            rr = self._ring.get_width() / 2 * 0.89
            mx, my = cx + rr * math.cos(ang), cy + rr * math.sin(ang)
            pygame.draw.circle(scr, (255, 255, 255), (round(mx), round(my)), round(22 * u), round(5 * u) or 1)
            b, g, r = ui.color_bgr
            pygame.draw.circle(scr, (r, g, b), (cx, cy), round(95 * u))
            pygame.draw.circle(scr, (255, 255, 255), (cx, cy), round(95 * u), max(1, round(4 * u)))
            self._text(ui.color_name, self.font, (cx, cy + rect.height // 2 + round(40 * u)), center=True, shadow=True)
        if ui.cursor is not None:
            x, y = round(ui.cursor[0] * ow), round(ui.cursor[1] * oh)
            pygame.draw.circle(scr, (255, 255, 255), (x, y), round(26 * u), max(1, round(5 * u)))
            pygame.draw.circle(scr, (255, 255, 255), (x, y), round(7 * u))
            if ui.cursor_progress > 0:
                rect = pygame.Rect(0, 0, round(70 * u), round(70 * u))
                rect.center = (x, y)
                pygame.draw.arc(scr, (90, 220, 140), rect, math.pi / 2,
                                math.pi / 2 + 2 * math.pi * ui.cursor_progress, max(2, round(8 * u)))
        if ui.message and ui.message_age < MESSAGE_S:
            fade = 1.0 if ui.message_age < MESSAGE_S - 0.5 else (MESSAGE_S - ui.message_age) / 0.5
            self._toast(ui.message, round(oh * 0.62), fade)
        if ui.hint:
            self._toast(ui.hint, round(oh * 0.86), 0.9, small=True)
        if ui.status:
            # First line big ("camera unavailable, retrying"), the reason small below.
            head, _, detail = ui.status.partition(": ")
            r = pygame.Rect(0, round(oh * 0.42), ow, round(150 * u))
            self._panel(r, 200, (150, 30, 30))
            self._text(head[:1].upper() + head[1:], self.font, (r.centerx, r.y + round(50 * u)), center=True)
            if detail:
                self._text(detail[:70], self.font_small, (r.centerx, r.y + round(108 * u)), center=True)
        if ui.banner:
            r = pygame.Rect(0, oh - round(70 * u), ow, round(70 * u))
            self._panel(r, 170, (30, 30, 90))
            self._text(ui.banner, self.font_small, r.center, center=True)
        if ui.debug_lines:
            y = round(240 * u)
            for line in ui.debug_lines:
                self._text(line, self.font_small, (round(20 * u), y), shadow=True, color=(180, 255, 180))
                y += round(38 * u)
        return scr

    def _panel(self, rect: pygame.Rect, alpha: int, color=(0, 0, 0)) -> None:
        s = pygame.Surface(rect.size, pygame.SRCALPHA)
        s.fill((*color, alpha))
        self.screen.blit(s, rect.topleft)

    def _text(self, text, font, pos, *, center=False, shadow=False, color=(255, 255, 255), alpha=255):
        img = font.render(text, True, color)
        rect = img.get_rect(center=pos) if center else img.get_rect(topleft=pos)
        if shadow:
            sh = font.render(text, True, (0, 0, 0))
            sh.set_alpha(alpha)
            self.screen.blit(sh, rect.move(2, 2))
        img.set_alpha(alpha)
        self.screen.blit(img, rect)

    def _toast(self, text: str, y: int, fade: float, small: bool = False) -> None:
        font = self.font if small else self.font_big
        img = font.render(text, True, (255, 255, 255))
        pad = round(24 * self.u)
        rect = img.get_rect(center=(self.size[0] // 2, y)).inflate(2 * pad, pad)
        self._panel(rect, round(170 * fade))
        img.set_alpha(round(255 * fade))
        self.screen.blit(img, img.get_rect(center=rect.center))

    def _card(self, ui: UiState) -> None:
        ow, oh = self.size
        u = self.u
        rect = pygame.Rect(round(30 * u), round(30 * u), ow - round(60 * u), round(190 * u))
        self._panel(rect, 160)
        b, g, r = ui.color_bgr
        sw = pygame.Rect(rect.x + round(24 * u), rect.y + round(30 * u), round(130 * u), round(130 * u))
        pygame.draw.rect(self.screen, (r, g, b), sw, border_radius=round(18 * u))
        self._text(ui.product, self.font, (sw.right + round(30 * u), rect.y + round(40 * u)))
        self._text(ui.product_detail, self.font_small, (sw.right + round(30 * u), rect.y + round(105 * u)),
                   color=(220, 220, 220))

    def present(self) -> None:
        pygame.display.flip()

    def snapshot(self) -> np.ndarray:
        """The current picture as an RGB array (H, W, 3)."""
        return pygame.surfarray.array3d(self.screen).transpose(1, 0, 2).copy()

    def save(self, path: str | Path) -> None:
        pygame.image.save(self.screen, str(path))

    def poll_keys(self) -> list[str]:
        """Keyboard for staff with a keyboard plugged in: d = debug, q/Esc = quit."""
        keys = []
        for ev in pygame.event.get():
            if ev.type == pygame.QUIT:
                keys.append("quit")
            elif ev.type == pygame.KEYDOWN:
                keys.append("quit" if ev.key in (pygame.K_ESCAPE, pygame.K_q) else pygame.key.name(ev.key))
        return keys

    def close(self) -> None:
        pygame.display.quit()
