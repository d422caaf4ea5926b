"""Frame sources, and the supervisor that keeps one alive.

Every source has the same small interface: `open()`, `read() -> Frame`,
`close()`. `read()` raises `EndOfStream` at the end of a non-looping file and
`SourceError` when the device fails. `SupervisedSource` runs a source in its own
thread, always holds the latest frame, and reopens a lost or stalled camera with
exponential backoff, announcing the loss and the recovery on the bus.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from mirror.core.backoff import Backoff

log = logging.getLogger(__name__)

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


class SourceError(Exception):
    """A source could not be opened or read; the message says how to fix it."""


class EndOfStream(Exception):
    pass


@dataclass
class Frame:
    image: np.ndarray            # BGR uint8, HxWx3
    ts: float                    # time.monotonic() when captured
    index: int
    depth: np.ndarray | None = None   # uint16 millimetres aligned to image, or None


class FrameSource:
    name = "source"

    def open(self) -> None: ...

    def read(self) -> Frame:
        raise NotImplementedError

    def close(self) -> None: ...

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc):
        self.close()


def check_depth(image: np.ndarray, depth: np.ndarray | None, where: str) -> None:
    if depth is None:
        return
    if depth.shape[:2] != image.shape[:2]:
        raise SourceError(f"{where}: depth is {depth.shape[1]}x{depth.shape[0]} but colour is "
                          f"{image.shape[1]}x{image.shape[0]}; record depth aligned to the colour stream")


class WebcamSource(FrameSource):
    def __init__(self, device: int = 0, width: int = 1280, height: int = 720, fps: int = 30):
        self.device, self.width, self.height, self.fps = device, width, height, fps
        self.name = f"camera {device}"
        self._cap = None
        self._n = 0

    def open(self) -> None:
        if not os.path.exists(f"/dev/video{self.device}"):
            raise SourceError(f"camera index {self.device} does not exist (/dev/video{self.device} is missing); "
                              f"check the cable or set camera.device")
        cap = cv2.VideoCapture(self.device, cv2.CAP_V4L2)
        if not cap.isOpened():
            raise SourceError(f"camera {self.device} cannot be opened; is another program using it?")
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        cap.set(cv2.CAP_PROP_FPS, self.fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        self._cap = cap

    def read(self) -> Frame:
        if self._cap is None:
            raise SourceError(f"{self.name} is not open")
        ok, img = self._cap.read()
        if not ok or img is None:
            raise SourceError(f"{self.name} stopped delivering frames")
        self._n += 1
        return Frame(img, time.monotonic(), self._n)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class _Paced:
    """Releases frames no faster than `fps` (0 = as fast as possible)."""

    def __init__(self, fps: float):
        self.period = 1.0 / fps if fps else 0.0
        self.next_t = 0.0

    def wait(self) -> None:
        if not self.period:
            return
        now = time.monotonic()
        if self.next_t > now:
            time.sleep(self.next_t - now)
            now = self.next_t
        self.next_t = max(now, self.next_t) + self.period


CLIP_FPS_RANGE = (1.0, 240.0)     # a container's frame rate outside this is taken as unknown
CLIP_DEFAULT_FPS = 25.0


class VideoFileSource(FrameSource):
    """A clip, read once or looped. Besides the frame, `clip_t` says where in the
    clip it is (seconds, loops counted on) by the frame's own timestamp, so a
    variable-frame-rate clip (phone footage) keeps its true times."""

    def __init__(self, path: str | Path, loop: bool = True, fps: float = 0.0):
        self.path = Path(path)
        self.loop = loop
        self.name = f"video {self.path.name}"
        self._pace = _Paced(fps)
        self._cap = None
        self._first: np.ndarray | None = None
        self._n = 0
        self._in_pass = 0
        self.clip_frames: int | None = None     # frames that decoded in one pass, once a pass has ended
        self.clip_fps = CLIP_DEFAULT_FPS        # the container's frame rate, once open (if it states a sane one)
        self.clip_fps_stated = False            # ... True when it did
        self.frame_count = 0                    # frames as the container states it (an estimate; 0 unknown)
        self.clip_t = 0.0                       # clip time of the frame last read, in seconds
        self._offset = 0.0                      # clip time at the start of this pass
        self._pos: float | None = None          # timestamp of the frame last read in this pass
        self._first_pos = 0.0

    def open(self) -> None:
        if self.path.is_dir():
            raise SourceError(f"{self.path} is a directory; pass a video file")
        if self.path.exists() and not self.path.is_file():
            # a FIFO or a device node: OpenCV would wait on it for ever, or read it as a camera
            raise SourceError(f"{self.path} is not a regular file; pass a video file (or the camera's device "
                              f"as camera.source = \"webcam\" with camera.device = N)")
        if not self.path.is_file():
            raise SourceError(f"video file {self.path} not found")
        cap = cv2.VideoCapture(str(self.path))
        ok, img = cap.read() if cap.isOpened() else (False, None)
        if not ok:
            cap.release()
            raise SourceError(f"{self.path}: cannot decode any frame; is it a video file (mp4, avi, mkv)?")
        # Keep the test frame rather than seek back: seeking fails on a one-frame clip.
        self._cap, self._first, self._in_pass = cap, img, 0
        self._first_pos = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.clip_fps_stated = math.isfinite(fps) and CLIP_FPS_RANGE[0] <= fps <= CLIP_FPS_RANGE[1]
        self.clip_fps = fps if self.clip_fps_stated else CLIP_DEFAULT_FPS
        count = cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0
        self.frame_count = int(count) if math.isfinite(count) and 0 < count < 1e9 else 0

    def _next(self) -> tuple[bool, np.ndarray | None]:
        if self._first is not None:
            img, self._first = self._first, None
            self._stamp(self._first_pos)
            return True, img
        ok, img = self._cap.read()
        if ok:
            self._stamp(self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0)
        return ok, img

    def _stamp(self, pos: float) -> None:
        """Take `pos` (the container's timestamp of the frame just decoded) as its
        time; one frame step on from the last when the container gives none that
        moves forward, or one that leaps (a corrupt timestamp would shift every
        later frame)."""
        step = 1.0 / self.clip_fps
        if self._pos is not None and not (math.isfinite(pos) and 0.0 < pos - self._pos <= max(1.0, 10 * step)):
            pos = self._pos + step
        elif self._pos is None and not (math.isfinite(pos) and pos >= 0.0):
            pos = 0.0
        self._pos = pos
        self.clip_t = self._offset + pos

    def _rewind(self) -> tuple[bool, np.ndarray | None]:
        """The clip's first frame again. Seeking to frame 0 then reading fails on
        some files (a one-frame clip); reopening the file always works."""
        self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        ok, img = self._cap.read()
        if not ok:
            self._cap.release()
            self._cap = cv2.VideoCapture(str(self.path))
            ok, img = self._cap.read()
        if ok:
            self._stamp(self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0)
        return ok, img

    def read(self) -> Frame:
        if self._cap is None:
            raise SourceError(f"{self.name} is not open")
        ok, img = self._next()
        if not ok:
            if self.clip_frames is None:
                self.clip_frames = self._in_pass
            if not self.loop:
                raise EndOfStream(self.name)
            # the next pass starts one frame after this one's last frame
            self._offset += (self._pos or 0.0) + 1.0 / self.clip_fps
            self._pos = None
            ok, img = self._rewind()
            if not ok:
                raise SourceError(f"{self.path}: decoding failed when looping")
            self._in_pass = 0
        self._in_pass += 1
        self._pace.wait()
        self._n += 1
        return Frame(img, time.monotonic(), self._n)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        self._first = None


def check_clip(path: str | Path) -> None:
    """SourceError when `path` is a still picture: OpenCV opens one as a
    one-frame "video", which would be measured or replayed as a clip."""
    p = Path(path)
    if p.is_file() and still_image_format(p):
        raise SourceError(f"{p} is an image, not a video; pass a clip (mp4, avi, mkv)")


MAX_IMAGE_PIXELS = 40_000_000      # 40 MP: a 7000x5700 photo; decoding one takes ~120 MB
# A person's photo is neither a strip nor a speck: the segmenter scales the short
# side up to its work size, so a 3x4000 strip would need gigabytes.
PHOTO_MAX_ASPECT = 8
PHOTO_MIN_SIDE = 16
_TAIL_BYTES = 64 * 1024


@contextlib.contextmanager
def _pillow_header(p: Path):
    """The file opened by Pillow, which reads only its header on open (ImportError
    without Pillow; Pillow's own errors for a file it cannot read)."""
    import warnings
    from PIL import Image
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(p) as im:
            yield im


def _header_size_pillow(p: Path) -> tuple[str, int, int] | None:
    """(format, width, height) from the file's header via Pillow, or None when
    Pillow is missing or cannot tell."""
    try:
        with _pillow_header(p) as im:
            return str(im.format or "image"), int(im.size[0]), int(im.size[1])
    except Exception:           # ImportError, DecompressionBombError, UnidentifiedImageError, a broken header...
        return None


def _header_size_own(p: Path) -> tuple[str, int, int] | None:
    """(format, width, height) read by hand from a PNG IHDR, JPEG SOFn, BMP or WebP header, or None."""
    import struct
    try:
        with open(p, "rb") as f:
            head = f.read(64)
            if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
                w, h = struct.unpack(">II", head[16:24])
                return "PNG", w, h
            if head.startswith(b"BM") and len(head) >= 26:
                w, h = struct.unpack("<ii", head[18:26])
                return "BMP", abs(w), abs(h)
            if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
                kind = head[12:16]
                if kind == b"VP8X":
                    return "WEBP", 1 + int.from_bytes(head[24:27], "little"), 1 + int.from_bytes(head[27:30], "little")
                if kind == b"VP8 ":
                    w, h = struct.unpack("<HH", head[26:30])
                    return "WEBP", w & 0x3FFF, h & 0x3FFF
                if kind == b"VP8L":
                    b = int.from_bytes(head[21:25], "little")
                    return "WEBP", (b & 0x3FFF) + 1, ((b >> 14) & 0x3FFF) + 1
                return None
            if not head.startswith(b"\xff\xd8"):
                return None
            f.seek(2)
            while True:                                     # walk the JPEG segments up to a SOFn
                marker = f.read(2)
                while marker[:1] == b"\xff" and marker[1:2] == b"\xff":
                    marker = marker[1:] + f.read(1)         # fill bytes
                if len(marker) < 2 or marker[0] != 0xFF:
                    return None
                m = marker[1]
                if 0xD0 <= m <= 0xD9 or m == 0x01:          # markers without a length
                    if m in (0xD9, 0xDA):
                        return None
                    continue
                seg = f.read(2)
                if len(seg) < 2:
                    return None
                length = struct.unpack(">H", seg)[0]
                if m in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                    sof = f.read(5)
                    if len(sof) < 5:
                        return None
                    h, w = struct.unpack(">HH", sof[1:5])
                    return "JPEG", w, h
                if m == 0xDA or length < 2:
                    return None
                f.seek(length - 2, os.SEEK_CUR)
    except (OSError, struct.error):
        return None


def _looks_truncated(p: Path, fmt: str) -> bool:
    """A PNG without its IEND chunk, or a JPEG whose last scan has no end-of-image marker."""
    try:
        with open(p, "rb") as f:
            f.seek(max(0, p.stat().st_size - _TAIL_BYTES))
            tail = f.read()
    except OSError:
        return False
    if fmt == "PNG":
        return b"IEND" not in tail
    if fmt in ("JPEG", "MPO"):
        return b"\xff\xd9" not in tail[tail.rfind(b"\xff\xda") + 1:]
    return False


def still_image_format(path: str | Path) -> str | None:
    """The format ("JPEG", "PNG"...) when the file is a single picture, else None
    (a video, an animated GIF or WebP, or something else)."""
    p = Path(path)
    try:
        from PIL import Image
    except ImportError:
        info = _header_size_own(p)
        return info[0] if info else None
    try:
        with _pillow_header(p) as im:
            return None if getattr(im, "n_frames", 1) > 1 else str(im.format or "image")
    except Image.DecompressionBombError:
        return "image"
    except Exception:           # not a picture Pillow knows
        return None


def read_image(path: str | Path, *, photo: bool = False) -> np.ndarray:
    """Read a colour image or raise SourceError naming the file.

    The size is read from the file's header first (Pillow, else a small reader for PNG, JPEG,
    BMP and WebP), so a huge picture is refused before a byte of it is decoded. A truncated
    file is decoded as far as OpenCV can, with a warning. `photo`: the image is to be a photo
    of a person (segment, recolor), so a strip or a speck is refused too."""
    img, fmt, truncated = _decode(Path(path), photo)
    if truncated:
        log.warning("%s: the %s file is truncated; using the part that decodes (the rest is grey or missing)",
                    path, fmt)
    return img


def read_photo(path: str | Path) -> tuple[np.ndarray, int | None]:
    """`read_image(path, photo=True)` without its warning, and for a truncated
    file the number of rows that decoded (None when the file is whole). Below
    them the decoder leaves a band of one colour (grey), which is no part of
    the photo."""
    img, _, truncated = _decode(Path(path), photo=True)
    return img, decoded_rows(img) if truncated else None


def _decode(p: Path, photo: bool) -> tuple[np.ndarray, str, bool]:
    """`read_image`'s work: (the image, its format, whether the file is truncated)."""
    if not p.exists():
        raise SourceError(f"image {p} not found")
    if not p.is_file():
        raise SourceError(f"{p} is not a file; pass a JPEG or PNG image")
    info = _header_size_pillow(p) or _header_size_own(p)
    if info is None:
        raise SourceError(f"{p}: cannot decode the image ({_why_no_header(p)}); use a JPEG or PNG image")
    fmt, w, h = info
    if w <= 0 or h <= 0:
        raise SourceError(f"{p}: the {fmt} header says {w}x{h} pixels; the file is broken, use another image")
    if w * h > MAX_IMAGE_PIXELS:
        raise SourceError(f"{p}: the image is {w}x{h} ({w * h / 1e6:.0f} MP), more than the "
                          f"{MAX_IMAGE_PIXELS / 1e6:.0f} MP limit; scale it down (for example to 4000 pixels wide)")
    if photo and (max(w, h) > PHOTO_MAX_ASPECT * min(w, h) or min(w, h) < PHOTO_MIN_SIDE):
        raise SourceError(f"{p} is {w}x{h} pixels; a photo of a person needs a sensible shape (sides at most "
                          f"{PHOTO_MAX_ASPECT}:1, at least {PHOTO_MIN_SIDE} px)")
    truncated = _looks_truncated(p, fmt)
    img = cv2.imread(str(p), cv2.IMREAD_COLOR)
    if img is None or img.size == 0:
        why = ("the file is truncated" if truncated else f"{fmt} images are not read here" if fmt in UNREAD_FORMATS
               else "is it a valid JPEG or PNG?")
        raise SourceError(f"{p}: cannot decode the image; {why}; use a JPEG or PNG image")
    return img, fmt, truncated


UNREAD_FORMATS = ("GIF",)     # Pillow reads their headers, OpenCV not their pixels
_MAGIC = {b"\xff\xd8\xff": "JPEG", b"\x89PNG": "PNG"}


def _why_no_header(p: Path) -> str:
    """Why a file has no picture's header: empty, cut short, or not a picture."""
    try:
        with open(p, "rb") as f:
            head = f.read(8)
    except OSError as e:
        return f"cannot read it: {e.strerror}"
    if not head:
        return "the file is empty"
    for magic, fmt in _MAGIC.items():
        if head.startswith(magic):
            return f"the {fmt} file is cut short before its size"
    return "its header is not a picture's"


def read_alpha(path: str | Path) -> np.ndarray | None:
    """The transparency of an image that has one (a cut-out PNG), as 8-bit, else None."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None or img.ndim != 3 or img.shape[2] != 4:
        return None
    alpha = img[..., 3]
    return (alpha // 257).astype(np.uint8) if alpha.dtype == np.uint16 else alpha


def decoded_rows(img: np.ndarray) -> int:
    """Rows of `img` above the band of one flat colour that a truncated file
    leaves at its bottom (all of them when there is none)."""
    band = (img == img[-1:, :1]).all(axis=(1, 2))      # every pixel of the row the last row's first colour
    if not band[-1]:
        return img.shape[0]
    above = np.flatnonzero(~band)
    return int(above[-1]) + 1 if above.size else 0


class ImageFolderSource(FrameSource):
    def __init__(self, path: str | Path, loop: bool = True, fps: float = 0.0):
        self.path = Path(path)
        self.loop = loop
        self.name = f"images {self.path}"
        self._pace = _Paced(fps)
        self._files: list[Path] = []
        self._skipped: set[Path] = set()
        self._i = 0
        self._n = 0

    def open(self) -> None:
        if not self.path.is_dir():
            raise SourceError(f"image folder {self.path} not found")
        self._files = sorted(f for f in self.path.iterdir() if f.suffix.lower() in IMAGE_EXTS)
        if not self._files:
            raise SourceError(f"{self.path}: no images (.jpg, .png, .bmp, .webp) in the folder")
        self._i = 0

    def read(self) -> Frame:
        for _ in range(len(self._files) + 1):
            if self._i >= len(self._files):
                if not self.loop:
                    raise EndOfStream(self.name)
                self._i = 0
            f = self._files[self._i]
            self._i += 1
            try:
                img = read_image(f)
            except SourceError as e:
                if f not in self._skipped:          # said once, not on every pass through the folder
                    self._skipped.add(f)
                    log.warning("skipping %s", e)
                continue
            self._pace.wait()
            self._n += 1
            return Frame(img, time.monotonic(), self._n)
        raise SourceError(f"{self.path}: none of the images can be decoded")


class RecordedDepthSource(FrameSource):
    """A folder of `NNNN_color.png` + `NNNN_depth.png` (16-bit millimetres) pairs."""

    def __init__(self, path: str | Path, loop: bool = True, fps: float = 0.0):
        self.path = Path(path)
        self.loop = loop
        self.name = f"recorded depth {self.path}"
        self._pace = _Paced(fps)
        self._pairs: list[tuple[Path, Path]] = []
        self._i = 0
        self._n = 0

    def open(self) -> None:
        if not self.path.is_dir():
            raise SourceError(f"recorded depth folder {self.path} not found")
        colours = sorted(self.path.glob("*_color.png"))
        self._pairs = [(c, c.with_name(c.name.replace("_color.png", "_depth.png"))) for c in colours]
        self._pairs = [(c, d) for c, d in self._pairs if d.exists()]
        if not self._pairs:
            raise SourceError(f"{self.path}: no NNNN_color.png + NNNN_depth.png pairs found")
        self._i = 0

    def read(self) -> Frame:
        if self._i >= len(self._pairs):
            if not self.loop:
                raise EndOfStream(self.name)
            self._i = 0
        c, d = self._pairs[self._i]
        self._i += 1
        img = read_image(c)
        depth = cv2.imread(str(d), cv2.IMREAD_UNCHANGED)
        if depth is None or depth.ndim != 2 or depth.dtype != np.uint16:
            raise SourceError(f"{d}: expected a single-channel 16-bit PNG of millimetres")
        check_depth(img, depth, str(d))
        self._pace.wait()
        self._n += 1
        return Frame(img, time.monotonic(), self._n, depth)


class RealSenseSource(FrameSource):
    """Intel RealSense colour plus depth aligned to colour (pip extra `realsense`)."""

    def __init__(self, width: int = 1280, height: int = 720, fps: int = 30):
        self.width, self.height, self.fps = width, height, fps
        self.name = "realsense"
        self._pipe = None
        self._align = None
        self._n = 0

    def open(self) -> None:
        try:
            import pyrealsense2 as rs  # optional extra
        except ImportError:
            raise SourceError("pyrealsense2 is not installed; run: pip install 'smart-mirror[realsense]'")
        pipe = rs.pipeline()
        cfg = rs.config()
        cfg.enable_stream(rs.stream.color, self.width, self.height, rs.format.bgr8, self.fps)
        cfg.enable_stream(rs.stream.depth, rs.format.z16, self.fps)
        try:
            profile = pipe.start(cfg)
        except RuntimeError as e:
            raise SourceError(f"RealSense camera not available ({e}); check the USB 3 cable")
        self._scale_mm = profile.get_device().first_depth_sensor().get_depth_scale() * 1000.0
        self._align = rs.align(rs.stream.color)
        self._pipe = pipe

    def read(self) -> Frame:
        if self._pipe is None:
            raise SourceError("realsense is not open")
        try:
            frames = self._align.process(self._pipe.wait_for_frames(2000))
        except RuntimeError as e:
            raise SourceError(f"RealSense stopped delivering frames ({e})")
        img = np.asanyarray(frames.get_color_frame().get_data()).copy()
        depth = np.asanyarray(frames.get_depth_frame().get_data()).astype(np.float32) * self._scale_mm
        depth = np.clip(depth, 0, 65535).astype(np.uint16)
        check_depth(img, depth, "realsense")
        self._n += 1
        return Frame(img, time.monotonic(), self._n, depth)

    def close(self) -> None:
        if self._pipe is not None:
            try:
                self._pipe.stop()
            finally:
                self._pipe = None


def source_from_config(cam, resolve: Callable[[str], Path] = Path, paced: bool = True) -> FrameSource:
    """Build the configured source (`cam` is a CameraConfig)."""
    fps = cam.fps if paced else 0
    if cam.source == "webcam":
        return WebcamSource(cam.device, cam.width, cam.height, cam.fps)
    if cam.source == "video":
        return VideoFileSource(resolve(cam.path), cam.loop, fps)
    if cam.source == "images":
        return ImageFolderSource(resolve(cam.path), cam.loop, fps)
    if cam.source == "recorded_depth":
        return RecordedDepthSource(resolve(cam.path), cam.loop, fps)
    if cam.source == "realsense":
        return RealSenseSource(cam.width, cam.height, cam.fps)
    raise SourceError(f"unknown camera.source {cam.source!r}")


class SupervisedSource:
    """Keeps a source running in a thread and always offers the latest frame.

    A source that raises, or delivers nothing for `stall_timeout` seconds, is
    closed and reopened after a backoff that doubles up to `backoff_max`.
    `on_event(name, message)` is told `camera.lost` and `camera.restored`.
    """

    def __init__(self, factory: Callable[[], FrameSource], *, stall_timeout: float = 2.0,
                 backoff_initial: float = 0.5, backoff_max: float = 10.0,
                 on_event: Callable[[str, str], None] | None = None):
        self.factory = factory
        self.stall_timeout = stall_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.on_event = on_event or (lambda name, msg: None)
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._seq = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._source: FrameSource | None = None
        self._last_frame_t = time.monotonic()
        self.ok = False
        self.ended = False
        self.problem = "camera starting"
        self.reconnects = 0

    def start(self) -> "SupervisedSource":
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        # Let the capture thread close its own source: closing an FFmpeg capture
        # while another thread is inside read() aborts the process.
        if self._thread:
            self._thread.join(timeout=2)
            src = self._source
            if self._thread.is_alive() and src is not None:
                src.close()                    # a read stuck in a device: unblock it
                self._thread.join(timeout=2)

    def latest(self) -> tuple[Frame | None, int]:
        """The newest frame and its sequence number (grows by one per frame)."""
        with self._cond:
            self._check_stall()
            return self._latest, self._seq

    def wait_newer(self, seq: int, timeout: float = 0.5) -> tuple[Frame | None, int]:
        with self._cond:
            self._cond.wait_for(lambda: self._seq > seq or self._stop.is_set() or self.ended, timeout)
            self._check_stall()
            return self._latest, self._seq

    def _check_stall(self) -> None:
        if self.ok and time.monotonic() - self._last_frame_t > self.stall_timeout:
            self._lost(f"no frame for {self.stall_timeout:.1f} s")
            src = self._source
            if src is not None:
                threading.Thread(target=src.close, daemon=True).start()  # unblocks a stuck read

    def _lost(self, why: str) -> None:
        if self.ok:
            self.ok = False
            self.problem = f"camera unavailable, retrying: {why}"
            log.warning("camera lost: %s", why)
            self.on_event("camera.lost", self.problem)

    def _run(self) -> None:
        backoff = Backoff(self.backoff_initial, self.backoff_max)
        while not self._stop.is_set():
            src = None
            try:
                src = self.factory()
                src.open()
            except Exception as e:  # not there, not readable (a folder's permissions), not a camera: retry
                if not isinstance(e, (SourceError, OSError)):
                    log.debug("opening the camera failed", exc_info=True)
                if src is not None:
                    with contextlib.suppress(Exception):
                        src.close()         # half open (a depth pipeline started): let the next try have it
                self.problem = f"camera unavailable, retrying: {e}"
                if self.ok or self.reconnects == 0:
                    log.warning("%s", self.problem)
                self._lost(str(e))
                self.reconnects += 1
                self._stop.wait(backoff.next())
                continue
            self._source = src
            try:
                while not self._stop.is_set():
                    frame = src.read()
                    with self._cond:
                        self._latest = frame
                        self._seq += 1
                        self._last_frame_t = time.monotonic()
                        if not self.ok:
                            self.ok = True
                            restored = self.reconnects > 0
                            self.problem = ""
                            if restored:
                                log.info("camera restored: %s", src.name)
                                self.on_event("camera.restored", f"{src.name} is back")
                        self._cond.notify_all()
                    backoff.reset()
            except EndOfStream:
                log.info("camera: %s ended (camera.loop is off)", src.name)
                self.ended = True
                with self._cond:
                    self._cond.notify_all()
                return
            except Exception as e:  # any failure of a device read: report and reopen
                if not self._stop.is_set():
                    self._lost(str(e) or e.__class__.__name__)
            finally:
                self._source = None
                src.close()
            if self._stop.is_set():
                return
            self.reconnects += 1
            self._stop.wait(backoff.next())
