"""Media seams of the call: the outbound mirror track, the friend's tile, the
time code used to measure glass-to-glass latency.

The render thread puts each outbound picture into a `LatestFrame` slot; the
track's `recv()` (on the call's asyncio loop) takes the newest one. Nothing
queues: a slow encoder skips frames instead of falling behind.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import threading
import time

import cv2
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import VideoFrame

log = logging.getLogger(__name__)

VIDEO_CLOCK = 90_000
TILE_PERIOD_S = 1 / 15
TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK)

# Time code: 32 bits of wall-clock milliseconds and an 8-bit check, as black
# and white blocks along the bottom-left of the outbound frame. Blocks are
# large so that VP8 at a modest bitrate keeps them readable.
TC_BITS = 40
TC_BLOCK_FRAC = 1 / 48          # block width as a fraction of the frame width
TC_ROW_FRAC = 1 / 27            # block height as a fraction of the frame height


def _checksum(value: int) -> int:
    return (value ^ (value >> 8) ^ (value >> 16) ^ (value >> 24) ^ 0x5A) & 0xFF


def _tc_blocks(img: np.ndarray) -> tuple[int, int, int, int]:
    """(height, width, block width, block height) of the time code in img."""
    h, w = img.shape[:2]
    return h, w, max(2, round(w * TC_BLOCK_FRAC)), max(2, round(h * TC_ROW_FRAC))


def stamp_timecode(img: np.ndarray, ms: int) -> None:
    """Draw the time code into a BGR, BGRX or RGB image in place."""
    h, w, bw, bh = _tc_blocks(img)
    value = ms & 0xFFFFFFFF
    word = (value << 8) | _checksum(value)
    y0 = h - bh
    for i in range(TC_BITS):
        bit = (word >> (TC_BITS - 1 - i)) & 1
        img[y0:h, i * bw:(i + 1) * bw] = 255 if bit else 0


def read_timecode(img: np.ndarray) -> int | None:
    """The stamped milliseconds (mod 2**32), or None if it doesn't check out.
    The browser does the same in JavaScript (call/static/join.js)."""
    h, w, bw, bh = _tc_blocks(img)
    gray = img if img.ndim == 2 else img[..., :3].mean(axis=2)
    y = h - bh // 2 - 1
    word = 0
    for i in range(TC_BITS):
        x = i * bw + bw // 2
        word = (word << 1) | int(gray[y, x] > 127)
    value = word >> 8
    return value if (word & 0xFF) == _checksum(value) else None


def fit_into(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale a picture to fit width x height, centred on black (letterbox)."""
    h, w = img.shape[:2]
    if (w, h) == (width, height):
        return img
    s = min(width / w, height / h)
    nw, nh = max(2, round(w * s)), max(2, round(h * s))
    # linear: INTER_AREA costs ~11 ms for 1080x1920 -> 405x720, linear under 1 ms
    small = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    out = np.zeros((height, width, img.shape[2]), np.uint8)
    x0, y0 = (width - nw) // 2, (height - nh) // 2
    out[y0:y0 + nh, x0:x0 + nw] = small
    return out


class LatestFrame:
    """A one-picture slot between the render thread and the asyncio loop.
    Pictures are BGR or BGRX (B, G, R, unused) arrays."""

    def __init__(self):
        self._lock = threading.Lock()
        self._frame: np.ndarray | None = None
        self._ts = 0.0
        self.seq = 0
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    def put(self, img: np.ndarray, ts_wall: float) -> None:
        with self._lock:
            self._frame, self._ts = img, ts_wall
            self.seq += 1
            waiters, self._waiters = self._waiters, []
        for loop, ev in waiters:
            try:
                loop.call_soon_threadsafe(ev.set)
            except RuntimeError:       # loop closed
                pass

    async def newer_than(self, seq: int) -> tuple[np.ndarray, float, int]:
        while True:
            with self._lock:
                if self.seq > seq and self._frame is not None:
                    return self._frame, self._ts, self.seq
                ev = asyncio.Event()
                self._waiters.append((asyncio.get_running_loop(), ev))
            await ev.wait()


class MirrorTrack(MediaStreamTrack):
    """The outbound video: the newest composed (or clean) mirror picture."""

    kind = "video"

    def __init__(self, slot: LatestFrame, width: int, height: int, fps: int, timecode: bool):
        super().__init__()
        self.slot = slot
        self.size = (width, height)
        self.period = 1.0 / fps
        self.timecode = timecode
        self._seq = 0
        self._t0: float | None = None
        self._last_sent = 0.0
        self.sent = 0

    async def recv(self) -> VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        # pace to the configured rate even when the mirror renders faster
        wait = self._last_sent + self.period - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        src, ts_wall, self._seq = await self.slot.newer_than(self._seq)
        self._last_sent = time.monotonic()
        img = fit_into(src, *self.size)
        if self.timecode:
            img = img.copy() if img is src else img
            stamp_timecode(img, int(ts_wall * 1000))
        yuv = cv2.cvtColor(img, cv2.COLOR_BGRA2YUV_I420 if img.shape[2] == 4 else cv2.COLOR_BGR2YUV_I420)
        frame = VideoFrame.from_ndarray(yuv, format="yuv420p")
        if self._t0 is None:
            self._t0 = ts_wall
        frame.pts = int((ts_wall - self._t0) * VIDEO_CLOCK)
        frame.time_base = TIME_BASE
        self.sent += 1
        return frame


class FriendVideo:
    """Drains the friend's inbound video and keeps the newest picture at tile size."""

    def __init__(self, tile_width: int):
        self.tile_width = tile_width
        self._lock = threading.Lock()
        self._tile: np.ndarray | None = None
        self.frames = 0
        self.size = (0, 0)
        self._converted = 0.0

    def latest(self) -> np.ndarray | None:
        with self._lock:
            return self._tile

    def clear(self) -> None:
        with self._lock:
            self._tile = None

    async def drain(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            self.frames += 1
            self.size = (frame.width, frame.height)
            now = time.monotonic()
            if now - self._converted < TILE_PERIOD_S:
                continue                   # a small tile needs no more than 15 fps
            self._converted = now
            tw = self.tile_width
            th = max(2, round(frame.height * tw / max(1, frame.width)) // 2 * 2)
            tile = frame.reformat(width=tw, height=th, format="bgr24").to_ndarray()
            with self._lock:
                self._tile = tile


async def drain_audio(track: MediaStreamTrack, output: str) -> None:
    """Play the friend's voice on `output` (an ALSA device) or just drain it."""
    if output and output != "none":
        try:
            from aiortc.contrib.media import MediaRecorder
            rec = MediaRecorder(output, format="alsa")
            rec.addTrack(track)
            await rec.start()
            log.info("friend's audio plays on %s", output)
            try:
                while track.readyState == "live":
                    await asyncio.sleep(0.5)
            finally:
                await rec.stop()
            return
        except Exception as e:  # no sound card: keep the call going without audio
            log.warning("cannot play the friend's audio on %s (%s); it is received but not played", output, e)
    while True:
        try:
            await track.recv()
        except MediaStreamError:
            return
