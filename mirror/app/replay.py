"""`mirror replay VIDEO`: the real kiosk, headless, on a clip, in clip time.

Each frame goes through the kiosk's own camera step (`CameraVision.step`:
hands, person, the pose-based body, engagement, gestures, presence) and the
one frame loop (`FrameLoop.tick`: bus, session, overlays, composition), as in
`mirror run`. Frames are fed at the clip's frame rate in clip time, not wall
time, so holds, cooldowns and dwells, and the garment refresh, happen at the
same clip times on a fast or a slow machine; the run itself may be faster or
slower than real time. No camera, no network listener, no reader: the call,
checkout and staff features are not built.

Each action prints as it fires, with its clip time and its source:
`gesture:<name>`, `motion:swipe_left|swipe_right|circle` or `button:<control>`.
A circling finger turns the colour continuously; each circling counts as one
`color_wheel` action. A store checks its lighting and placement with it, and
it measures the false-trigger rate on clips of people not addressing the mirror.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from mirror.app.bench import Progress
from mirror.core import config
from mirror.core.bus import Event
from vision.capture import CLIP_FPS_RANGE, EndOfStream, Frame, SourceError, VideoFileSource, check_clip

MAX_SECONDS = 24 * 3600
CIRCLE_GAP_S = 0.8        # motion.circle events further apart than this are two circlings
SCREEN = (540, 960)       # the demo's portrait view: composition costs as in the demo


class ReplayError(ValueError):
    """Bad input (one line for the command line)."""


class ReplayStopped(Exception):
    """The replay was asked to stop (`stopping` set) before its end."""

    def __init__(self, t: float, frames: int):
        super().__init__(f"stopped at {t:.2f} s of clip time ({frames} frames)")
        self.t, self.frames = t, frames


COLOUR_SAMPLE = (0, 10, 20, 40, 80)   # frames looked at for colour (a clip may fade in from black)
GREY_SPREAD = 4            # a frame whose channels differ by no more than this anywhere is grey
SCENE_SPREAD = 40          # ... and one with less lightness spread than this is blank, not grey


def clip_info(video: Path, err: TextIO | None = None) -> tuple[float, int]:
    """(frames per second, frame count as the container states it, 0 unknown).
    SourceError when the file is missing or no frame decodes. Warnings on `err`
    when the container states no sane frame rate, and when the clip has no colour."""
    check_clip(video)
    src = VideoFileSource(video, loop=False)
    src.open()                      # raises SourceError with one clear line
    seen = []
    try:
        for i in range(COLOUR_SAMPLE[-1] + 1):
            image = src.read().image
            if i in COLOUR_SAMPLE:
                seen.append(image)
    except EndOfStream:
        pass
    finally:
        src.close()
    if err is not None and not src.clip_fps_stated:
        print(f"mirror replay: warning: {video.name} states no frame rate between {CLIP_FPS_RANGE[0]:g} and "
              f"{CLIP_FPS_RANGE[1]:g} fps; its frames' own timestamps are used, {src.clip_fps:g} fps where they "
              f"have none", file=err, flush=True)
    if err is not None and colourless(seen):
        print(f"mirror replay: warning: {video.name} has no colour; the hand and person models find far fewer "
              f"hands in grey (or infrared) video, so few actions here do not mean few with a colour camera",
              file=err, flush=True)
    return src.clip_fps, src.frame_count


def colourless(frames: list) -> bool:
    """The clip is grey (a monochrome or infrared camera): every frame of
    `frames` that shows a scene has no colour. Blank frames (a fade from
    black) say nothing either way."""
    scenes = 0
    for bgr in frames:
        small = bgr[::8, ::8].astype(int)
        if int(small.max()) - int(small.min()) < SCENE_SPREAD:
            continue
        scenes += 1
        if int((small.max(axis=2) - small.min(axis=2)).max()) > GREY_SPREAD:
            return False
    return scenes > 0


def check_seconds(seconds: float | None) -> None:
    if seconds is not None and not (math.isfinite(seconds) and 0 < seconds <= MAX_SECONDS):
        raise ReplayError(f"--seconds must be a number of seconds above 0 and at most {MAX_SECONDS}, got {seconds}")


def source_name(source: str) -> str:
    """The session's `source` of an action, as replay reports it."""
    if source.startswith("control:"):
        return "button:" + source.split(":", 1)[1]
    if source.startswith("swipe_"):
        return "motion:" + source
    if source in config.GESTURES:
        return "gesture:" + source
    return source


@dataclass
class ActionLog:
    """The actions of one replay, in clip time."""
    out: TextIO | None = None
    actions: list[dict] = field(default_factory=list)
    t: float = 0.0
    closed: bool = False          # the reader of `out` went away
    _last_circle: float = -1e9

    def on_action(self, ev: Event) -> None:
        self.add(ev.data["action"], source_name(str(ev.data.get("source", ""))))

    def on_circle(self, ev: Event) -> None:
        if self.t - self._last_circle > CIRCLE_GAP_S:
            self.add("color_wheel", "motion:circle")
        self._last_circle = self.t

    def add(self, action: str, source: str) -> None:
        row = {"t": round(self.t, 3), "action": action, "source": source}
        self.actions.append(row)
        if self.out is not None and not self.closed:
            try:
                print(f"{row['t']:8.2f} s  {action:<12} from {source}", file=self.out, flush=True)
            except BrokenPipeError:
                # (`| head -1`) raised here, the bus would only log it; the
                # replay loop ends on `closed` instead
                self.closed = True


def replay_config(cfg: config.Config) -> config.Config:
    """The kiosk's config for a replay: a small headless window and a catalogue
    read from a file (a replay must not write the store's database)."""
    cfg = cfg.replace("display", fullscreen=False, width=SCREEN[0], height=SCREEN[1])
    if not cfg.catalog.path:
        from mirror.app.catalog_source import SEED_CSV
        cfg = cfg.replace("catalog", path=str(SEED_CSV))
    return cfg


def replay(video: Path, seconds: float | None = None, *, cfg: config.Config | None = None,
           out: TextIO | None = sys.stdout, err: TextIO | None = sys.stderr, as_json: bool = False,
           stopping: threading.Event | None = None) -> dict:
    """Run the kiosk on `video` for `seconds` of clip time (looping it), or the
    clip once. Returns {"seconds", "frames", "actions", "actions_per_min"}.
    Raises ReplayStopped, with nothing printed as a result, once `stopping` is set."""
    from mirror.app.kiosk import Kiosk
    check_seconds(seconds)
    video = Path(video)
    fps, count = clip_info(video, err)
    cfg = replay_config(cfg or config.load(None))
    # for the progress line only: the replay ends by clip time
    total = max(1, round(seconds * fps)) if seconds is not None else count
    log = ActionLog(out)
    kiosk = Kiosk(cfg, features=[], headless=True, serve=False)
    # the garment model (and with it the body that engagement uses) is rebuilt
    # synchronously every garment_refresh_s of clip time, and each frame's hands
    # are looked for on that frame, as often on any machine
    kiosk.camera.pipeline.background_refresh = False
    kiosk.camera.pipeline.search_beside = False
    kiosk.bus.subscribe("action.done", log.on_action)
    kiosk.bus.subscribe("motion.circle", log.on_circle)
    src = VideoFileSource(video, loop=seconds is not None)
    progress = Progress(f"replay {video.name}", total, err is not None and (sys.stderr.isatty() or as_json))
    t0 = time.perf_counter()
    frames = 0
    try:
        src.open()
        while True:
            if stopping is not None and stopping.is_set():
                raise ReplayStopped(log.t, frames)
            try:
                image = src.read().image
            except EndOfStream:
                break
            # at least one frame: --seconds shorter than a frame still runs the kiosk once
            if frames and seconds is not None and src.clip_t >= seconds:
                break
            log.t = src.clip_t
            kiosk.camera.step(Frame(image, log.t, frames))
            kiosk.loop.tick(log.t)
            if log.closed:          # an action of this frame was printed to a reader that has gone
                raise BrokenPipeError("the reader of the actions went away")
            frames += 1
            progress.tick(frames)
        progress.end()
    finally:
        src.close()
        kiosk.camera.pipeline.close()
        kiosk.comp.close()
    if frames == 0:
        raise SourceError(f"{video}: no frames could be decoded")
    clip_s = log.t + 1.0 / fps          # up to the end of the last frame shown
    # The container's count can be an estimate a frame or a few percent off; far
    # fewer frames than it says is a cut-off file.
    decoded = src.clip_frames
    if err is not None and decoded is not None and count - decoded > max(1, count // 20):
        print(f"mirror replay: warning: only {decoded} of {count} frames could be decoded; the clip may be "
              f"truncated", file=err, flush=True)
    result = {"seconds": round(clip_s, 3), "frames": frames, "actions": log.actions,
              "actions_per_min": round(len(log.actions) / (clip_s / 60.0), 2)}
    if err is not None:
        wall = time.perf_counter() - t0
        print(f"mirror replay: {video.name}: {_plural(frames, 'frame')}, {clip_s:.2f} s of clip at {fps:g} fps "
              f"in {wall:.1f} s ({frames / max(wall, 1e-6):.1f} fps); {_plural(len(log.actions), 'action')}, "
              f"{result['actions_per_min']:.2f} a minute", file=err, flush=True)
    if out is not None and as_json:
        print(json.dumps(result), file=out, flush=True)
    return result


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
