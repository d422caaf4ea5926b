"""`mirror bench`: the whole per-frame pipeline over N frames of a clip.

Decoding is done up front and excluded. Per frame: hand tracking and person
segmentation (in parallel), the garment matte, gesture interpretation,
recolouring and composition of the portrait output picture. `--naive` also
runs the naive pipeline from the brief (hands, selfie segmentation and pose on
every frame at full resolution, then full-frame recolouring) on the same
frames, so the ratio comes from one run.

The "hands" stage is the time a frame waited for hand tracking: 0 while no hand
is tracked, as the search for one then runs beside the frames
(`VisionPipeline.search_beside`).
"""

from __future__ import annotations

import json
import queue
import statistics
import threading
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from mirror.core.config import Config
from vision.pipeline import VisionPipeline, render_frame
from render.compositor import Compositor, crop_box
from render.overlays import ShopperOverlay, ShopperView
from vision.capture import Frame, SourceError, VideoFileSource, check_clip
from vision.hands import HandTracker
from vision.interaction import HandInput
from vision.recolor import recolor
from vision.body import body_layout
from vision.person import PoseEstimator
from vision import models

MAX_DECODED = 240          # unique frames held in memory; the clip loops over them
MAX_FRAMES = 100_000       # nearly an hour at the kiosk's 30 fps (twice that with --naive)
WARMUP = 8
DRAIN_S = 10.0             # at most this long for the vision thread to finish its frame when stopped
COLOR = (60, 40, 200)


class BenchStopped(Exception):
    """The bench was asked to stop (`stopping` set) before its end."""

    def __init__(self, frames: int, naive: bool = False):
        super().__init__(f"stopped after {frames} frame{'' if frames == 1 else 's'}"
                         f"{' of the naive run' if naive else ''}")
        self.frames = frames


def _stop_if_asked(stopping: threading.Event | None, done: int, naive: bool = False) -> None:
    if stopping is not None and stopping.is_set():
        raise BenchStopped(done, naive)


def decode(path: Path, n: int) -> list[np.ndarray]:
    check_clip(path)
    src = VideoFileSource(path, loop=False)
    src.open()
    frames = []
    try:
        while len(frames) < min(n, MAX_DECODED):
            try:
                frames.append(src.read().image)
            except Exception:
                break
    finally:
        src.close()
    if not frames:
        raise SourceError(f"{path}: no frames could be decoded")
    return frames


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


class Progress:
    """`label: i/total frames, fps` on stderr: a live line on a terminal, a line
    every 5 s in a log. `total` None (or 0) when unknown; a run may go past an
    estimated total, and is then shown as a count."""

    def __init__(self, label: str, total: int | None, enabled: bool):
        self.label, self.total, self.enabled = label, total or None, enabled
        self.t0 = time.perf_counter()
        self.last = 0.0
        self.tty = sys.stderr.isatty()
        self.open_line = False        # a live line not yet ended

    def end(self) -> None:
        """End the live line (a run that went past its estimated total)."""
        if self.open_line:
            print(file=sys.stderr, flush=True)
            self.open_line = False

    def tick(self, i: int) -> None:
        now = time.perf_counter()
        if self.enabled and (now - self.last > (0.5 if self.tty else 5.0) or i == self.total):
            self.last = now
            fps = i / max(1e-6, now - self.t0)
            of = f"/{self.total}" if self.total and i <= self.total else ""
            line = f"{self.label}: {i}{of} frames, {fps:5.1f} fps"
            if self.tty:
                self.open_line = i != self.total
                print("\r" + line, end="" if self.open_line else "\n", file=sys.stderr, flush=True)
            else:
                print(line, file=sys.stderr, flush=True)


def run_optimised(cfg: Config, frames: list[np.ndarray], n: int, comp: Compositor, shopper: ShopperOverlay,
                  progress: bool, stopping: threading.Event | None = None) -> dict:
    """As the kiosk runs it: vision on its own thread (itself two threads),
    gestures, recolouring and composition on the main thread, so frame i+1's
    vision overlaps frame i's rendering. Raises BenchStopped once `stopping` is set."""
    pipe = VisionPipeline(cfg.vision, cfg.depth, parallel=True)
    hand_input = HandInput(cfg.gestures, mirror=cfg.display.mirror)
    stages: dict[str, list[float]] = {k: [] for k in ("hands", "segment", "gestures", "recolor", "compose")}
    intervals: list[float] = []
    latencies: list[float] = []
    prog = Progress("optimised", n, progress)
    h, w = frames[0].shape[:2]
    x0, _, cw, _ = crop_box((w, h), comp.size)
    columns = (x0, x0 + cw)
    results: queue.Queue = queue.Queue(maxsize=2)
    halt = threading.Event()          # the main thread has left (stopped, interrupted, failed)
    worker: threading.Thread | None = None

    def vision() -> None:
        try:
            for i in range(n):
                if halt.is_set():
                    return
                t0 = time.perf_counter()
                res = pipe.process(Frame(frames[i % len(frames)], time.monotonic(), i))
                results.put((t0, res))
        except BaseException as e:          # handed to the main thread, which would otherwise wait for ever
            results.put(e)
            return
        results.put(None)

    try:
        for i in range(WARMUP):
            _stop_if_asked(stopping, 0)
            pipe.process(Frame(frames[i % len(frames)], time.monotonic(), i))
        worker = threading.Thread(target=vision, name="bench-vision", daemon=True)
        t_start = last = time.perf_counter()
        worker.start()
        done = 0
        while True:
            _stop_if_asked(stopping, done)
            try:
                item = results.get(timeout=0.2)
            except queue.Empty:
                continue
            if item is None:
                break
            if isinstance(item, BaseException):
                raise item
            t_in, res = item
            t1 = time.perf_counter()
            hand_input.update(res.hands, res.frame.ts, res.body)
            t2 = time.perf_counter()
            out = render_frame(res, COLOR, cfg.vision.feather_px, columns=columns)
            t3 = time.perf_counter()
            shopper.view = ShopperView(cursor=hand_input.cursor, product="bench", color_bgr=COLOR)
            comp.compose(out)
            t4 = time.perf_counter()
            stages["hands"].append(res.timings["hands"])
            stages["segment"].append(res.timings["segment"])
            stages["gestures"].append((t2 - t1) * 1000)
            stages["recolor"].append((t3 - t2) * 1000)
            stages["compose"].append((t4 - t3) * 1000)
            intervals.append((t4 - last) * 1000)
            latencies.append((t4 - t_in) * 1000)
            last = t4
            done += 1
            prog.tick(done)
        wall = time.perf_counter() - t_start
        worker.join()
    finally:
        if worker is not None and worker.is_alive():
            # let it finish the frame in hand (it may wait on the full queue)
            # before the models it uses close under it
            halt.set()
            give_up = time.monotonic() + DRAIN_S
            while worker.is_alive() and time.monotonic() < give_up:
                try:
                    results.get(timeout=0.1)
                except queue.Empty:
                    pass
        pipe.close()
    out = summarise(n, wall, intervals, stages)
    out["latency_p50_ms"] = round(pct(latencies, 0.5), 2)
    out["latency_p95_ms"] = round(pct(latencies, 0.95), 2)
    out["garment_refreshes"] = pipe.refreshes
    out["garment_refresh_p50_ms"] = round(statistics.median(pipe.refresh_ms), 1) if pipe.refresh_ms else 0.0
    return out


class NaivePipeline:
    """Everything on every frame at full resolution, one after another."""

    def __init__(self):
        self.hands = HandTracker(static=False, model="full", width=None)
        self.seg = models.selfie_segmentation(landscape=False)
        self.pose = PoseEstimator(static=False)

    def matte(self, img: np.ndarray) -> np.ndarray:
        rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        person = self.seg.process(rgb).segmentation_mask.astype(np.float32)
        pose = self.pose.process(img)
        region = np.zeros(img.shape[:2], np.uint8)
        lay = body_layout(pose, (img.shape[1], img.shape[0])) if pose is not None else None
        if lay is not None:
            cv2.fillConvexPoly(region, np.round(lay.torso).astype(np.int32), 1)
            region = cv2.dilate(region, np.ones((61, 61), np.uint8))
        return person * region


def run_naive(frames: list[np.ndarray], n: int, comp: Compositor, progress: bool,
              stopping: threading.Event | None = None) -> dict:
    nv = NaivePipeline()
    stages: dict[str, list[float]] = {k: [] for k in ("hands", "segment", "recolor", "compose")}
    totals: list[float] = []
    prog = Progress("naive", n, progress)
    for i in range(WARMUP):
        nv.hands.process(frames[i % len(frames)])
    t_start = time.perf_counter()
    for i in range(n):
        _stop_if_asked(stopping, i, naive=True)
        img = frames[i % len(frames)]
        t0 = time.perf_counter()
        nv.hands.process(img)
        t1 = time.perf_counter()
        m = nv.matte(img)
        t2 = time.perf_counter()
        out = recolor(img, m, COLOR)
        t3 = time.perf_counter()
        comp.compose(out)
        t4 = time.perf_counter()
        for k, v in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            stages[k].append(v * 1000)
        totals.append((t4 - t0) * 1000)
        prog.tick(i + 1)
    return summarise(n, time.perf_counter() - t_start, totals, stages)


def summarise(n: int, wall: float, totals: list[float], stages: dict[str, list[float]]) -> dict:
    """`totals`: per-frame milliseconds, i.e. the time each output frame took to arrive."""
    return {
        "frames": n,
        "fps": round(n / wall, 2),
        "p50_ms": round(pct(totals, 0.5), 2),
        "p95_ms": round(pct(totals, 0.95), 2),
        "stages": {k: {"p50_ms": round(pct(v, 0.5), 2), "p95_ms": round(pct(v, 0.95), 2)} for k, v in stages.items()},
    }


def print_table(name: str, r: dict) -> None:
    print(f"{name}: {r['frames']} frames, {r['fps']:.1f} fps, per frame p50 {r['p50_ms']:.1f} ms, "
          f"p95 {r['p95_ms']:.1f} ms" + (f", latency p50 {r['latency_p50_ms']:.1f} ms, p95 {r['latency_p95_ms']:.1f} ms"
                                         if "latency_p50_ms" in r else ""))
    for k, v in r["stages"].items():
        print(f"  {k:<9} p50 {v['p50_ms']:6.2f} ms   p95 {v['p95_ms']:6.2f} ms")


def bench(cfg: Config, video: Path, frames_n: int, *, naive: bool, as_json: bool, progress: bool = True,
          stopping: threading.Event | None = None) -> dict:
    """Raises BenchStopped, with no result printed, once `stopping` is set."""
    models.check_bundled()
    frames = decode(video, frames_n)
    h, w = frames[0].shape[:2]
    comp = Compositor(cfg.display.width, cfg.display.height, mirror=cfg.display.mirror, headless=True)
    shopper = ShopperOverlay(ShopperView(product="bench", color_bgr=COLOR))
    comp.add(shopper)
    try:
        result = run_optimised(cfg, frames, frames_n, comp, shopper, progress, stopping)
        result["video"] = str(video)
        result["size"] = f"{w}x{h}"
        if naive:
            nr = run_naive(frames, frames_n, comp, progress, stopping)
            result["naive"] = nr
            result["ratio"] = round(result["fps"] / max(1e-6, nr["fps"]), 2)
    finally:
        comp.close()
    print_table("optimised", result)
    if naive:
        print_table("naive", result["naive"])
        print(f"ratio: {result['ratio']:.2f}x the naive pipeline's fps")
    if as_json:
        print(json.dumps(result))
    return result
