"""The pygame compositor: a portrait, mirrored picture with the kiosk's overlays.

`Compositor.compose(frame, ui)` draws one output picture from a BGR camera
frame (already recoloured) and a `UiState`, a plain description of what the
overlays should show. It knows nothing about gestures or sessions. Headless
with SDL_VIDEODRIVER=dummy; `snapshot()` returns the picture as an RGB array.
"""

from __future__ import annotations

import math
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame  # noqa: E402

if typing.TYPE_CHECKING:
    from nfc.checkout import CheckoutView


@dataclass
class CallView:
    """What the friend call shows on the mirror."""
    status: str = ""                                # "Connecting to Jane…", "Friend calls unavailable: …"
    link: str = ""                                  # a join link to show as a QR code
    knocking: str = ""                              # a friend waiting to be let in
    friend: str = ""                                # the friend in the call
    tile: np.ndarray | None = None                  # her newest video frame, BGR, tile-sized
    reactions: list[tuple[str, str, str, float]] = field(default_factory=list)   # name, kind, text, age s


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
    # on-screen buttons: label, (x, y, w, h) normalised, cursor over it, press progress 0..1
    controls: list[tuple[str, tuple[float, float, float, float], bool, float]] = field(default_factory=list)
    call: CallView | None = None
    checkout: "CheckoutView | None" = None          # nfc.checkout.CheckoutView: confirmation, tap again ...


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
        self._qr: tuple[str, pygame.Surface] | None = None
        # The screen's memory is plain B, G, R, X rows (the usual case): the camera
        # view can be scaled straight into it and snapshots are a memory copy.
        scr = self.screen
        self._plain_bgrx = (scr.get_bitsize() == 32 and scr.get_masks()[:3] == (0xFF0000, 0xFF00, 0xFF)
                            and scr.get_pitch() == width * 4)

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

    def compose(self, frame_bgr: np.ndarray | None, ui: UiState) -> pygame.Surface:
        scr = self.screen
        if frame_bgr is None:
            scr.fill((12, 12, 16))
        elif not self._draw_frame_direct(frame_bgr):
            scr.blit(self.frame_surface(frame_bgr), (0, 0))
        ow, oh = self.size
        u = self.u
        for label, (x, y, w, h), hot, progress in ui.controls:
            r = pygame.Rect(round(x * ow), round(y * oh), round(w * ow), round(h * oh))
            self._panel(r, 190 if hot else 120, (20, 60, 110) if hot else (0, 0, 0))
            if progress > 0:                  # fills left to right while the hand holds still
                fill = r.copy()
                fill.width = max(1, round(r.width * min(1.0, progress)))
                self._panel(fill, 150, (40, 150, 255))
            pygame.draw.rect(self.screen, (255, 255, 255), r, max(1, round((4 if hot else 2) * u)),
                             border_radius=round(10 * u))
            self._text(label, self.font_small, r.center, center=True, shadow=True)
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
        if ui.call is not None:
            self._draw_call(ui.call)
        if ui.checkout is not None:
            self._draw_checkout(ui.checkout)
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

    def _text(self, text, font, pos, *, center=False, shadow=False, color=(255, 255, 255), alpha=255, right=False):
        img = font.render(text, True, color)
        rect = (img.get_rect(center=pos) if center else img.get_rect(topright=pos) if right
                else img.get_rect(topleft=pos))
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

    # --- tap-to-checkout ---------------------------------------------------------
    _CHECKOUT_COLOURS = {"confirmed": (90, 220, 140), "saving": (200, 200, 200), "refused": (250, 190, 60),
                         "retry": (250, 190, 60), "cancelled": (200, 200, 200), "error": (235, 80, 80)}

    def _wrap(self, text: str, font, width: int) -> list[str]:
        lines, cur = [], ""
        for word in text.split():
            trial = f"{cur} {word}".strip()
            if cur and font.size(trial)[0] > width:
                lines.append(cur)
                cur = word
            else:
                cur = trial
        return lines + ([cur] if cur else [])

    def _draw_checkout(self, v) -> None:
        """The checkout panel (nfc.checkout.CheckoutView): title, lines, a big
        till code, and the reader status as a small line."""
        ow, oh = self.size
        u = self.u
        if v.kind != "status":
            if not hasattr(self, "_font_code"):
                self._font_code = pygame.font.Font(None, max(16, round(130 * u)))
            width = ow - round(130 * u)
            title = self._wrap(v.title, self.font_big, width)
            lines = [ln for line in v.lines for ln in self._wrap(line, self.font_small, width)]
            h = (round(40 * u) + len(title) * round(70 * u) + len(lines) * round(42 * u)
                 + (round(130 * u) if v.code else 0) + round(20 * u))
            r = pygame.Rect(round(50 * u), round(oh * 0.66), ow - round(100 * u), h)
            if r.bottom > oh - round(80 * u):
                r.bottom = oh - round(80 * u)
            self._panel(r, 215, (10, 20, 15))
            accent = self._CHECKOUT_COLOURS.get(v.kind, (200, 200, 200))
            pygame.draw.rect(self.screen, accent, r, max(2, round(5 * u)), border_radius=round(14 * u))
            y = r.y + round(25 * u)
            for line in title:
                self._text(line, self.font_big, (r.centerx, y + round(32 * u)), center=True)
                y += round(70 * u)
            for i, line in enumerate(lines):
                self._text(line, self.font_small, (r.centerx, y + round(20 * u)), center=True,
                           color=(215, 230, 220))
                y += round(42 * u)
                if v.code and i == 0:           # "Pay at the till with this code:" then the code
                    self._text(v.code, self._font_code, (r.centerx, y + round(60 * u)), center=True, color=accent)
                    y += round(130 * u)
        if v.status:
            self._text(v.status[:80], self.font_small, (round(30 * u), oh - round(130 * u)), shadow=True,
                       color=(250, 190, 60))

    # --- the friend call ---------------------------------------------------------
    def _draw_call(self, call: CallView) -> None:
        ow, oh = self.size
        u = self.u
        scr = self.screen
        tw = call.tile.shape[1] if call.tile is not None else round(ow * 0.32)
        tile_rect = pygame.Rect(ow - tw - round(30 * u), round(250 * u), tw, round(tw * 9 / 16))
        if call.friend:
            if call.tile is not None:
                img = call.tile
                tile_rect.h = img.shape[0]
                scr.blit(pygame.image.frombuffer(np.ascontiguousarray(img), (img.shape[1], img.shape[0]), "BGR"),
                         tile_rect)
            else:
                self._panel(tile_rect, 200, (20, 20, 30))
                self._text(call.friend[:1].upper(), self.font_big, tile_rect.center, center=True)
            pygame.draw.rect(scr, (255, 255, 255), tile_rect, max(1, round(3 * u)), border_radius=round(8 * u))
            self._text(call.friend, self.font_small, (tile_rect.x + round(10 * u), tile_rect.bottom + round(8 * u)),
                       shadow=True)
        if call.status:
            self._text(call.status[:60], self.font_small, (ow - round(30 * u), tile_rect.bottom + round(50 * u)),
                       shadow=True, right=True)
        for i, (name, kind, text, age) in enumerate(call.reactions):
            self._reaction(name, kind, text, age, tile_rect)
        if call.knocking:
            # above the rows of buttons (mirror/controls.py), whose "Let in" and
            # "Decline" answer it
            r = pygame.Rect(round(60 * u), round(oh * 0.235), ow - round(120 * u), round(220 * u))
            self._panel(r, 215, (15, 40, 25))
            pygame.draw.rect(scr, (90, 220, 140), r, max(2, round(5 * u)), border_radius=round(14 * u))
            self._text(f"{call.knocking} wants to join", self.font_big, (r.centerx, r.y + round(75 * u)), center=True)
            self._text("Thumbs-up or the button to let them in · fist to decline", self.font_small,
                       (r.centerx, r.y + round(160 * u)), center=True, color=(210, 240, 220))
        if call.link:
            self._draw_qr(call.link)

    def _reaction(self, name: str, kind: str, text: str, age: float, anchor: pygame.Rect) -> None:
        u = self.u
        rise = min(1.0, age / 3.0)
        alpha = 255 if age < 2.5 else max(0, round(255 * (3.5 - age)))
        x = anchor.right - round(20 * u)
        # rise from just above the buttons' first row (mirror/controls.py) toward the tile
        y = anchor.bottom + round(200 * u) - round(160 * u * rise)
        label = {"like": f"{name} likes it", "love": f"{name} loves it"}.get(kind, f"{name}: {text}")
        img = self.font_small.render(label, True, (255, 255, 255))
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
            plus = self.font_small.render("+1", True, (255, 255, 255))
            bubble.blit(plus, plus.get_rect(center=(cx, cy)))
        else:
            pygame.draw.circle(bubble, (250, 190, 60, alpha), (cx, cy), icon // 2)
        img.set_alpha(alpha)
        bubble.blit(img, (icon + round(24 * u), (rect.h - img.get_height()) // 2))
        self.screen.blit(bubble, rect)

    def _draw_qr(self, url: str) -> None:
        ow, oh = self.size
        u = self.u
        side = round(300 * u)
        if self._qr is None or self._qr[0] != url:
            import segno
            m = np.array(segno.make(url, error="m").matrix, dtype=np.uint8)
            m = np.pad(m, 2)                                   # quiet zone
            img = np.where(m[..., None] > 0, 0, 255).astype(np.uint8).repeat(3, axis=2)
            img = cv2.resize(img, (side, side), interpolation=cv2.INTER_NEAREST)
            self._qr = (url, pygame.image.frombuffer(img.tobytes(), (side, side), "RGB"))
        r = pygame.Rect(ow - side - round(60 * u), round(oh * 0.66), side + round(30 * u), side + round(110 * u))
        self._panel(r, 200)
        self.screen.blit(self._qr[1], (r.x + round(15 * u), r.y + round(15 * u)))
        self._text("Scan to invite a friend", self.font_small, (r.centerx, r.bottom - round(60 * u)), center=True)
        host = url.split("//", 1)[-1].split("/", 1)[0]
        self._text(host, self.font_small, (r.centerx, r.bottom - round(25 * u)), center=True, color=(200, 200, 200))

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
