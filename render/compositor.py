"""The pygame compositor: a portrait, mirrored picture with overlays on top.

`Compositor.compose(frame, now)` draws the camera frame (already recoloured),
then every overlay registered with `add()`, lowest `z` first. An overlay is any
object with a `z` and a `draw(compositor, now)`; each part of the kiosk
registers its own and keeps the small view it draws from, so adding one never
edits this file. The compositor knows nothing about gestures, sessions, calls
or checkouts. Headless with SDL_VIDEODRIVER=dummy; `snapshot()` returns the
picture as an RGB array.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame  # noqa: E402

from mirror.core.text import without_controls  # noqa: E402

log = logging.getLogger(__name__)
OVERLAY_ERROR_LOG_S = 60.0      # a failing overlay is logged at most this often


class Overlay(Protocol):
    """Something drawn over the camera picture: a feature's card, a banner ..."""
    z: int                                          # drawing order, lowest first

    def draw(self, c: "Compositor", now: float) -> None: ...


@dataclass
class ComposedFrame:
    """One finished picture, handed to whoever wants it after it is composed
    (the call's outbound video, screenshots, latency probes)."""
    comp: "Compositor"
    clean_bgr: np.ndarray | None                    # the recoloured camera picture, no overlays
    t: float                                        # when it was composed (monotonic)

    def bgrx(self) -> np.ndarray:
        return self.comp.snapshot_bgrx()

    def png(self) -> bytes:
        return self.comp.png_bytes()


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
        self._overlays: list[Overlay] = []
        self._overlay_errors: dict[str, float] = {}
        # The screen's memory is plain B, G, R, X rows (the usual case): the camera
        # view can be scaled straight into it and snapshots are a memory copy.
        scr = self.screen
        self._plain_bgrx = (scr.get_bitsize() == 32 and scr.get_masks()[:3] == (0xFF0000, 0xFF00, 0xFF)
                            and scr.get_pitch() == width * 4)

    def frame_surface(self, frame_bgr: np.ndarray) -> pygame.Surface:
        ow, oh = self.size
        x0, y0, cw, ch = crop_box((frame_bgr.shape[1], frame_bgr.shape[0]), self.size)
        view = frame_bgr[y0:y0 + ch, x0:x0 + cw]
        if self.mirror:
            view = cv2.flip(view, 1)
        view = cv2.resize(view, (ow, oh), interpolation=cv2.INTER_LINEAR)
        return pygame.image.frombuffer(view, (ow, oh), "BGR")     # no copy: blitted at once

    def _draw_frame_direct(self, frame_bgr: np.ndarray) -> bool:
        """Scale the camera view straight into the screen's memory when its
        layout is plain 32-bit BGRX: one resize instead of a resize, a copy and
        a converting blit. False when the layout differs (then blit)."""
        if not self._plain_bgrx:
            return False
        scr = self.screen
        ow, oh = self.size
        x0, y0, cw, ch = crop_box((frame_bgr.shape[1], frame_bgr.shape[0]), self.size)
        view = frame_bgr[y0:y0 + ch, x0:x0 + cw]
        if self.mirror:
            view = cv2.flip(view, 1)
        small = cv2.cvtColor(view, cv2.COLOR_BGR2BGRA)
        buf = scr.get_buffer()
        try:
            dst = np.frombuffer(buf, np.uint8).reshape(oh, ow, 4)
            out = cv2.resize(small, (ow, oh), dst=dst, interpolation=cv2.INTER_LINEAR)
            if out.ctypes.data != dst.ctypes.data:      # cv2 chose a new array: copy it over
                dst[...] = out
            del dst, out
        finally:
            del buf                                     # unlocks the surface
        return True

    def add(self, overlay: "Overlay") -> None:
        """Register an overlay; it is drawn on every composed frame from now on."""
        self._overlays.append(overlay)
        self._overlays.sort(key=lambda o: o.z)

    def remove(self, overlay: "Overlay") -> None:
        if overlay in self._overlays:
            self._overlays.remove(overlay)

    def compose(self, frame_bgr: np.ndarray | None, now: float = 0.0) -> pygame.Surface:
        scr = self.screen
        if frame_bgr is None:
            scr.fill((12, 12, 16))
        elif not self._draw_frame_direct(frame_bgr):
            scr.blit(self.frame_surface(frame_bgr), (0, 0))
        for overlay in self._overlays:
            try:
                overlay.draw(self, now)
            except Exception:
                # one feature's broken card must not take the mirror down: it is
                # left out of this frame, and said in the log (not every frame)
                key = type(overlay).__name__
                t = time.monotonic()
                if t - self._overlay_errors.get(key, -1e9) >= OVERLAY_ERROR_LOG_S:
                    self._overlay_errors[key] = t
                    log.exception("overlay %s failed to draw; left out of the picture", key)
        return scr

    def panel(self, rect: pygame.Rect, alpha: int, color=(0, 0, 0)) -> None:
        s = pygame.Surface(rect.size, pygame.SRCALPHA)
        s.fill((*color, alpha))
        self.screen.blit(s, rect.topleft)

    def text(self, text, font, pos, *, center=False, shadow=False, color=(255, 255, 255), alpha=255, right=False):
        text = without_controls(text)
        img = font.render(text, True, color)
        rect = (img.get_rect(center=pos) if center else img.get_rect(topright=pos) if right
                else img.get_rect(topleft=pos))
        if shadow:
            sh = font.render(text, True, (0, 0, 0))
            sh.set_alpha(alpha)
            self.screen.blit(sh, rect.move(2, 2))
        img.set_alpha(alpha)
        self.screen.blit(img, rect)

    def toast(self, text: str, y: int, fade: float, small: bool = False) -> None:
        font = self.font if small else self.font_big
        img = font.render(without_controls(text), True, (255, 255, 255))
        pad = round(24 * self.u)
        rect = img.get_rect(center=(self.size[0] // 2, y)).inflate(2 * pad, pad)
        self.panel(rect, round(170 * fade))
        img.set_alpha(round(255 * fade))
        self.screen.blit(img, img.get_rect(center=rect.center))

    def wrap(self, text: str, font, width: int) -> list[str]:
        lines, cur = [], ""
        for word in text.split():
            trial = f"{cur} {word}".strip()
            if cur and font.size(trial)[0] > width:
                lines.append(cur)
                cur = word
            else:
                cur = trial
        return lines + ([cur] if cur else [])

    def snapshot_bgrx(self) -> np.ndarray:
        """A copy of the current picture as (H, W, 4) bytes in B, G, R, X order:
        a straight copy of the screen's memory (about 1 ms at 1080x1920, where
        a converting copy takes 4-5 ms)."""
        w, h = self.size
        if not self._plain_bgrx:
            rgb = pygame.surfarray.array3d(self.screen).transpose(1, 0, 2)
            return np.dstack([rgb[..., ::-1], np.zeros((h, w), np.uint8)])
        return np.frombuffer(self.screen.get_buffer(), np.uint8).reshape(h, w, 4).copy()

    def present(self) -> None:
        pygame.display.flip()

    def snapshot(self) -> np.ndarray:
        """The current picture as an RGB array (H, W, 3)."""
        return pygame.surfarray.array3d(self.screen).transpose(1, 0, 2).copy()

    def save(self, path: str | Path) -> None:
        pygame.image.save(self.screen, str(path))

    def png_bytes(self) -> bytes:
        ok, buf = cv2.imencode(".png", cv2.cvtColor(self.snapshot(), cv2.COLOR_RGB2BGR))
        return buf.tobytes()

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
