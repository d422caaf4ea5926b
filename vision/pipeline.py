"""The per-frame vision pipeline shared by the kiosk, the demo and the bench.

`VisionPipeline.process(frame)` runs hand tracking and person segmentation at
the same time on two threads (MediaPipe releases the GIL, so they really run on
both cores), then the cheap per-frame garment matte. While no hand is tracked,
the search for one is not waited for (`search_beside`). The slow garment model
(pose + GrabCut) is rebuilt in the background every `garment_refresh_s`.

`render_frame()` turns a frame and its vision result into the recoloured,
full-size picture the compositor draws.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import os
import threading
import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from vision.capture import Frame
from vision.depth import cut_behind
from vision.engagement import Body, body_from_pose
from vision.hands import Hand, HandTracker, hand_mask
from vision.recolor import recolor
from vision.garment import WORK_WIDTH, GarmentModel, refine_to
from vision.garment_parts import check_part
from vision.person import FaceFinder, PersonSegmenter, PoseEstimator, shrink
from vision.shopper import Her, only_her, others_beside

log = logging.getLogger(__name__)

SEG_WIDTH = 256
REFINE_BUDGET_PX = 640 * 360
BODY_MAX_AGE = 2.5      # refresh intervals after which the body from the last pose is too old to engage with
REFRESH_NICE = 10


@dataclass
class VisionResult:
    frame: Frame
    hands: list[Hand]
    person: np.ndarray            # float32 [0,1] at work size
    matte: np.ndarray             # float32 [0,1] garment matte at work size
    presence: float               # share of the view the person fills
    timings: dict[str, float] = field(default_factory=dict)
    body: Body | None = None      # her torso from the latest pose (vision/engagement.py), if recent
    part: str = "full"            # which part of her clothing `matte` covers (VisionPipeline.set_part)


class VisionPipeline:
    def __init__(self, vcfg, dcfg=None, *, parallel: bool = True, background_refresh: bool = True):
        self.cfg = vcfg
        self.dcfg = dcfg
        self.hands = HandTracker(static=False, model=vcfg.hands_model, max_hands=vcfg.max_hands,
                                 min_conf=vcfg.min_hand_confidence, width=vcfg.hands_width)
        self.hands.search_every = vcfg.hand_search_every
        self.person = PersonSegmenter(width=SEG_WIDTH)
        # made on the refresher thread, see _background
        self.pose: PoseEstimator | None = None
        self.people_pose: PoseEstimator | None = None   # made when someone first stands beside her
        self.faces: FaceFinder | None = None
        self.background_refresh = background_refresh
        self._pool = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="hands") if parallel else None
        # While no hand is tracked, the palm search (the costliest hand call, 17 ms
        # against 6.5 for tracking) runs beside the next frames instead of holding
        # this one up; a hand it finds arrives a frame late. Off for `mirror replay`,
        # whose frames must not depend on how fast the machine is.
        self.search_beside = parallel
        self._search: cf.Future | None = None
        self._refresher = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="garment",
                                                initializer=self._background)
        # Start that thread now: a model that cannot load fails here, at start-up,
        # not as a broken pool once a second later.
        self._refresher.submit(lambda: None).result()
        self._refresh_future: cf.Future | None = None
        self._last_refresh = -1e9
        # >1 while something else needs the CPU (a friend call's encoder): the
        # slow garment model is then rebuilt less often
        self.refresh_scale = 1.0
        self.model: GarmentModel | None = None
        self.body: Body | None = None
        self._matte_prev: np.ndarray | None = None
        self._matte_part = "full"
        self.refreshes = 0
        self.refresh_ms: list[float] = []
        self._lock = threading.Lock()
        self._part = "full"

    def set_part(self, part: str) -> None:
        """Which part of her clothing the matte covers from the next frame on:
        upper, lower, dress, full or none (vision.garment_parts.PARTS).
        Safe from any thread; raises PartError for anything else."""
        check_part(part)
        with self._lock:
            self._part = part

    @property
    def part(self) -> str:
        with self._lock:
            return self._part

    def _background(self) -> None:
        """The garment refresh (pose + GrabCut, about 85 ms a second) runs at a
        lower priority so it only takes what the per-frame work leaves: at
        equal priority it stretched the frames it overlapped into the p95.
        Linux nice is per thread, and threads inherit it, so the pose graph's
        own threads are created here, after it is set."""
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), REFRESH_NICE)
        except (AttributeError, OSError):
            pass
        self.pose = PoseEstimator(static=False, body_mask=True)
        self.faces = FaceFinder()

    def _refresh(self, img: np.ndarray, person: np.ndarray, depth, ts: float = 0.0) -> None:
        t0 = time.perf_counter()
        try:
            pose, body_mask = self.pose.landmarks_and_body(img)
            her = self._only_her(img, person, pose, body_mask)
            if her is not None:
                # a friend beside her: the shopper's clothes are cut, and her
                # hands are the ones the mirror listens to
                img, pose = her.painted, her.points
                person = np.where(her.others, 0.0, person).astype(np.float32)
            # the engagement zone rides on the pose this refresh needs anyway
            body = body_from_pose(pose, (img.shape[1], img.shape[0]), ts)
            with self._lock:
                self.body = body
            face = self.faces.process(img, pose)
            model = GarmentModel.build(img, person, pose, iterations=2, depth_mm=depth, face_box=face)
        except Exception:
            # in the background nobody would see it: log it, keep the last model
            log.exception("garment model refresh failed; keeping the previous one")
            with self._lock:
                self.refreshes += 1
            return
        with self._lock:
            if model is not None or pose is None:
                self.model = model
            self.refreshes += 1
            self.refresh_ms.append((time.perf_counter() - t0) * 1000)

    def _only_her(self, img: np.ndarray, person: np.ndarray, pose: np.ndarray | None,
                  body_mask: np.ndarray | None) -> Her | None:
        """The shopper, when the person mask shows someone besides the body
        pose is tracking (`vision.shopper`): pose follows whoever it found
        first, which may be the friend beside her. None when she is alone."""
        if not others_beside(pose, body_mask, person):
            return None
        if self.people_pose is None:
            # a second pose graph costs about 115 MB: only a kiosk that has
            # seen two people at once pays for it (on this, the refresher thread)
            self.people_pose = PoseEstimator(static=True, body_mask=True)
        return only_her(img, person, self.people_pose, first=(pose, body_mask))

    def process(self, frame: Frame) -> VisionResult:
        img = frame.image
        t: dict[str, float] = {}
        t0 = time.perf_counter()
        fut = beside = None
        if self._search is not None:
            if not self._search.done():
                beside = ([], 0.0)                    # still looking
            else:
                search, self._search = self._search, None
                try:
                    found = search.result()
                except Exception:                     # one failed search must not stop hand tracking
                    log.exception("hand search on an earlier frame failed")
                    found = ([], 0.0)
                if found[0]:
                    # found on the frame before (its points are a frame old): tracked from the next
                    beside = found
        if beside is None and self._pool:
            if self.search_beside and not self.hands.tracking:
                self._search = self._pool.submit(self._timed_hands, img)
                beside = ([], 0.0)
            else:
                fut = self._pool.submit(self._timed_hands, img)
        small = shrink(img, (WORK_WIDTH, round(img.shape[0] * WORK_WIDTH / img.shape[1])))
        person_raw = self.person.process(img)
        person = cv2.resize(person_raw, (small.shape[1], small.shape[0]), interpolation=cv2.INTER_LINEAR)
        depth_use = frame.depth is not None and (self.dcfg is None or self.dcfg.enabled)
        if depth_use:
            person = cut_behind(person, frame.depth, self.dcfg.cut_beyond_m if self.dcfg else 0.6)
        now = frame.ts       # the frame's clock: a replayed clip refreshes in clip time
        if now - self._last_refresh >= self.cfg.garment_refresh_s * self.refresh_scale and (
                self._refresh_future is None or self._refresh_future.done()):
            self._last_refresh = now
            args = (img.copy(), person.copy(), frame.depth if depth_use else None, frame.ts)
            self._refresh_future = self._refresher.submit(self._refresh, *args)
            if not self.background_refresh or self.refreshes == 0:
                # the very first model, or a caller that wants it now; later
                # attempts (nobody there yet) must not hold hand tracking up
                self._refresh_future.result()
        with self._lock:
            model, body, part = self.model, self.body, self._part
        if body is not None and frame.ts - body.t > BODY_MAX_AGE * self.cfg.garment_refresh_s * self.refresh_scale:
            body = None
        if model is not None and part != "none":
            m = model.matte(small, person, part)
            k = self.cfg.mask_smoothing
            if (self._matte_prev is not None and self._matte_prev.shape == m.shape and k > 0
                    and self._matte_part == part):   # never blend in another part's matte
                m = cv2.addWeighted(self._matte_prev, k, m, 1.0 - k, 0.0)
            self._matte_prev, self._matte_part = m, part
        else:
            m = np.zeros(small.shape[:2], np.float32)
        t["segment"] = (time.perf_counter() - t0) * 1000
        if beside is not None:
            hands, t["hands"] = beside[0], 0.0
        elif fut is not None:
            hands, t["hands"] = fut.result()
        else:
            hands, t["hands"] = self._timed_hands(img)
        if hands and model is not None:
            m = m * (1.0 - hand_mask(hands, m.shape))
        t["vision"] = (time.perf_counter() - t0) * 1000
        presence = float((person > 0.5).mean())
        return VisionResult(frame, hands, person, m, presence, t, body, part)

    def _timed_hands(self, img):
        t0 = time.perf_counter()
        hands = self.hands.process(img)
        return hands, (time.perf_counter() - t0) * 1000

    def close(self) -> None:
        if self._pool:
            self._pool.shutdown(wait=True)
        self._refresher.shutdown(wait=True)


def render_frame(result: VisionResult, color_bgr, feather_px: int = 5, strength: float = 1.0,
                 columns: tuple[int, int] | None = None, part: str | None = None) -> np.ndarray:
    """The frame with its garment recoloured, working only where the matte is
    and (with `columns`) only on the part of the frame the screen shows.
    `part` "none" leaves the frame as it is (a product that is not clothing);
    which part the matte covers is chosen before, by `VisionPipeline.set_part`."""
    img = result.frame.image
    small = result.matte
    if part is not None and check_part(part) == "none":
        return img
    if strength <= 0 or not small.any():
        return img
    h, w = img.shape[:2]
    sh, sw = small.shape
    rows = np.flatnonzero(small.max(1) > 0.02)
    cols = np.flatnonzero(small.max(0) > 0.02)
    if rows.size == 0:
        return img
    fx, fy = w / sw, h / sh
    x0, x1 = int((cols[0] - 2) * fx), int((cols[-1] + 3) * fx)
    y0, y1 = int((rows[0] - 2) * fy), int((rows[-1] + 3) * fy)
    if columns is not None:
        x0, x1 = max(x0, columns[0]), min(x1, columns[1])
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return img
    # The matching piece of the small matte, brought to full size with edges
    # that follow the image.
    sx0, sx1 = int(x0 / fx), int(np.ceil(x1 / fx))
    sy0, sy1 = int(y0 / fy), int(np.ceil(y1 / fy))
    roi = img[y0:y1, x0:x1]
    # the edge-following filter runs at half the frame's size, within a pixel budget so a
    # portrait camera (whose matte is finer for the same work width) costs what a landscape one does
    scale = max(fx / 2, (w * h / REFINE_BUDGET_PX) ** 0.5)
    alpha = refine_to(small[sy0:sy1, sx0:sx1], roi, max(0, round(feather_px * w / 1280.0)), scale=scale)
    out = img.copy()
    recolor(roi, alpha, color_bgr, strength, out=out[y0:y1, x0:x1])
    return out
