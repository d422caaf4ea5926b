"""Finding her in a frame: the person mask, pose landmarks, her face, and boxes
around her. Thin wrappers over the MediaPipe models; the garment code builds on
them (`vision.garment`, `vision.photo_segmenter`)."""

from __future__ import annotations

import threading

import cv2
import numpy as np

from vision import models


HALF = 0.6               # a photo's person mask is also made on its top and bottom 60% (PersonSegmenter)
HALF_COVER = 0.4         # ... unless she covers this share of the photo (whole bodies: 0.13-0.31)
PERSON_MIN = 0.005       # a photo's crop: the biggest piece of sure person (> 0.5) must be this share of it
PERSON_WEAK = 0.2        # ... other pieces joined to it above this
PERSON_PIECE = 0.25      # ... count if at least this share of its size
BODY_AGREE = 0.5         # share of pose's body mask the person mask must hold for it to count (`with_body`)


class PersonSegmenter:
    """MediaPipe selfie segmentation; returns a float32 [0,1] mask at `width`."""

    def __init__(self, width: int = 256):
        self.width = width
        self._model = models.selfie_segmentation(landscape=False)
        self._lock = threading.Lock()

    def process(self, bgr: np.ndarray, halves: bool = False) -> np.ndarray:
        """The mask at `width` x (width * h / w); `halves`: see `add_halves`."""
        mask = self._one(bgr)
        return self.add_halves(bgr, mask) if halves else mask

    def add_halves(self, bgr: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """`mask` (this picture's, from `process`) with its halves added, for
        photos: a picture taller than wide is also run as its top and bottom
        `HALF` (overlapping), each larger in the model's input, and a pixel is
        hers if any run says so. At 256 px a standing body is thin, and the
        model loses a raised leg or an arm held out. Not when she already
        covers `HALF_COVER` of the picture (a close-up): there the halves add
        only the wall beside her."""
        h, w = bgr.shape[:2]
        if h <= w or (mask > 0.5).mean() >= HALF_COVER:
            return mask
        mask = mask.copy()
        out_h = mask.shape[0]
        for y0, y1 in ((0, round(HALF * h)), (round((1 - HALF) * h), h)):
            a, b = round(y0 * out_h / h), round(y1 * out_h / h)
            part = cv2.resize(self._one(bgr[y0:y1]), (self.width, b - a), interpolation=cv2.INTER_LINEAR)
            mask[a:b] = np.maximum(mask[a:b], part)
        return mask

    def _one(self, bgr: np.ndarray) -> np.ndarray:
        h, w = bgr.shape[:2]
        # The model's input is square and MediaPipe stretches to it; a tall
        # photo squeezed sideways loses the torso (seen on two_hands_raised).
        # So letterbox: longer side = width, edges replicated.
        s = self.width / max(h, w)
        sw, sh = max(1, round(w * s)), max(1, round(h * s))
        small = shrink(bgr, (sw, sh))
        y0, x0 = (self.width - sh) // 2, (self.width - sw) // 2
        square = cv2.copyMakeBorder(small, y0, self.width - sh - y0, x0, self.width - sw - x0,
                                    cv2.BORDER_REPLICATE)
        with self._lock:
            res = self._model.process(cv2.cvtColor(square, cv2.COLOR_BGR2RGB))
        mask = res.segmentation_mask[y0:y0 + sh, x0:x0 + sw].astype(np.float32)
        out_h = max(1, round(h * self.width / w))
        return cv2.resize(mask, (self.width, out_h), interpolation=cv2.INTER_LINEAR)


class PoseEstimator:
    """MediaPipe pose; with `body_mask`, also the pose model's own mask of the
    body it found (see `with_body`)."""

    def __init__(self, static: bool = False, body_mask: bool = False):
        self.static = static
        self._model = models.pose(static, body_mask)
        self._lock = threading.Lock()

    def process(self, bgr: np.ndarray) -> np.ndarray | None:
        """(33, 3) array of x, y in pixels of `bgr` and visibility, or None."""
        return self.landmarks_and_body(bgr)[0]

    def landmarks_and_body(self, bgr: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        """`process`'s landmarks, and the body mask (float32 [0,1], `bgr`'s
        size) when made with `body_mask` and a body was found, else None."""
        pts, body = self._run(bgr)
        if pts is None and self.static:
            # The pose detector misses some tight portrait crops (arms raised
            # over the head) that it finds once the picture is padded square.
            h, w = bgr.shape[:2]
            side = max(h, w)
            x0 = (side - w) // 2
            padded = cv2.copyMakeBorder(bgr, 0, side - h, x0, side - w - x0, cv2.BORDER_REPLICATE)
            pts, body = self._run(padded)
            if pts is not None:
                pts[:, 0] -= x0
            if body is not None:
                body = np.ascontiguousarray(body[:h, x0:x0 + w])
        return pts, body

    def _run(self, bgr: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        h, w = bgr.shape[:2]
        with self._lock:
            res = self._model.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        if not res.pose_landmarks:
            return None, None
        body = getattr(res, "segmentation_mask", None)
        pts = np.array([[p.x * w, p.y * h, p.visibility] for p in res.pose_landmarks.landmark], np.float32)
        return pts, None if body is None else body.astype(np.float32)


def with_body(person: np.ndarray, body: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """The person mask told by pose's body mask: (her, maybe).

    The selfie model, made for faces near a webcam, takes a full-length body
    loosely (the floor between her legs, her shadow, a lamp beside her) and
    sometimes drops a sitting shin. Pose's mask is made for whole bodies and
    follows her tightly, but cuts a flared skirt or a sheer dress short.
    So `her` (float, `person`'s size) is the body mask, and `maybe` (bool) is
    what only the selfie model takes: GrabCut may keep it if it has her
    clothes' colours, starting from not garment. The person mask as it is,
    and no maybe, with no body mask; when she fills `HALF_COVER` of the
    picture (a close-up, where pose, made for whole bodies, can take raised
    arms for a body); and when under `BODY_AGREE` of pose's body is in the
    person mask (pose alone finds a body in a desk's clutter)."""
    sure = person > 0.5
    if body is None or sure.mean() >= HALF_COVER:
        return person, None
    body = cv2.resize(body, (person.shape[1], person.shape[0]), interpolation=cv2.INTER_AREA)
    hers = body > 0.5
    if (hers & sure).sum() < BODY_AGREE * max(1, hers.sum()):
        return person, None
    return body, sure & ~hers


FACE_NOSE_MARGIN = 0.5   # pose's nose may lie this share of the face box's size outside it


class FaceFinder:
    """MediaPipe face detection: a face's box (x, y, w, h) in pixels, or None.

    Pose gives a face too, but with the face partly covered (an arm across the
    forehead) its face points can be far off; the detector's box holds up."""

    def __init__(self):
        self._model = models.face_detection()
        self._lock = threading.Lock()

    def process(self, bgr: np.ndarray, pose: np.ndarray | None = None) -> tuple[int, int, int, int] | None:
        """The biggest face; with `pose` (PoseEstimator's points in pixels of
        `bgr`), the face of the person pose found: the one holding her nose
        (the biggest face may be the friend beside her), None if none does."""
        h, w = bgr.shape[:2]
        with self._lock:
            res = self._model.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        if not res.detections:
            return None
        boxes = [(round(b.xmin * w), round(b.ymin * h), round(b.width * w), round(b.height * h))
                 for b in (d.location_data.relative_bounding_box for d in res.detections)]
        if pose is not None and visible(pose, 0, 0.3):
            nx, ny = float(pose[0, 0]), float(pose[0, 1])
            boxes = [b for b in boxes if _holds(b, nx, ny, FACE_NOSE_MARGIN)]
        return max(boxes, key=lambda b: b[2] * b[3]) if boxes else None


def _holds(box: tuple[int, int, int, int], x: float, y: float, margin: float) -> bool:
    """Point (x, y) lies in `box` grown by `margin` of its size on every side."""
    bx, by, bw, bh = box
    return bx - margin * bw <= x <= bx + (1 + margin) * bw and by - margin * bh <= y <= by + (1 + margin) * bh


def face_ellipse(box: tuple[int, int, int, int], scale: float = 1.0) -> tuple[tuple[float, float], tuple[float, float]]:
    """Centre and half-axes of the face inside a detector box. The box runs
    from the brows to a little below the chin; the ellipse stops at the chin
    so a collar stays garment."""
    x, y, w, h = box
    return (x + w / 2, y + h * 0.45), (w * 0.42 * scale, h * 0.45 * scale)


def shrink(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`img` scaled down to `size` (w, h), averaging pixels as INTER_AREA does.

    OpenCV's INTER_AREA is fast for whole-number ratios and about 20x slower
    otherwise (2.5 ms for a 720x1280 frame to 320 wide): halve exactly while the
    ratio is 2 or more, then finish with a linear step of less than 2x."""
    w, h = size
    while img.shape[1] >= 2 * w and img.shape[0] >= 2 * h:
        ih, iw = img.shape[:2]
        img = cv2.resize(img[:ih - ih % 2, :iw - iw % 2], (iw // 2, ih // 2), interpolation=cv2.INTER_AREA)
    if (img.shape[1], img.shape[0]) == (w, h):
        return img
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)


def person_extent(person: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x, y, w, h) in `person`'s pixels around the biggest piece of sure
    person (over 0.5) and the big pieces joined to it, or None if the biggest
    is under PERSON_MIN of the mask.

    Bent over, the model can be only half sure of her torso, and one leg
    alone was the biggest piece: a crop to it cut the rest of her off. Pieces
    joined to it through weaker evidence (over PERSON_WEAK) are her too if at
    least PERSON_PIECE of its size; a smaller one (a hand, or a thing beside
    her joined through the blur) adds little but could widen the crop and
    cost her pixels."""
    strong = (person > 0.5).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(strong, connectivity=8)
    areas = stats[:, cv2.CC_STAT_AREA].copy()
    areas[0] = 0
    i = int(np.argmax(areas))
    if n < 2 or areas[i] < PERSON_MIN * strong.size:
        return None
    _, weak = cv2.connectedComponents((person > PERSON_WEAK).astype(np.uint8), connectivity=8)
    joined = np.unique(labels[(weak == weak[labels == i][0]) & (strong > 0)])
    mine = stats[[j for j in joined if areas[j] >= PERSON_PIECE * areas[i]]]
    x0, y0 = mine[:, 0].min(), mine[:, 1].min()
    x1, y1 = (mine[:, 0] + mine[:, 2]).max(), (mine[:, 1] + mine[:, 3]).max()
    return int(x0), int(y0), int(x1 - x0), int(y1 - y0)


def box_with_margin(x: float, y: float, w: float, h: float, margin: float,
                    size: tuple[int, int]) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the box (x, y, w, h) grown by `margin` of its longer
    side all round, clipped to an image of `size` (width, height)."""
    m = margin * max(w, h)
    return (max(0, int(x - m)), max(0, int(y - m)), min(size[0], int(x + w + m)), min(size[1], int(y + h + m)))


def person_box(person: np.ndarray, size: tuple[int, int], margin: float) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) round her (`person_extent`) with `margin` of her size
    around her, in pixels of an image of `size` (width, height), or None."""
    extent = person_extent(person)
    if extent is None:
        return None
    s = size[0] / person.shape[1]
    return box_with_margin(*(v * s for v in extent), margin, size)


def visible(p: np.ndarray, i: int, t: float = 0.5) -> bool:
    return bool(p[i, 2] >= t)


UPSIDE_DOWN = 45.0   # degrees from straight up within which a torso pointing up means the photo is upside down


def upside_down(p: np.ndarray | None) -> bool:
    """Pose points (in pixels) of someone whose hips are above her shoulders,
    her torso within UPSIDE_DOWN of pointing straight up: a photo turned over
    (or a handstand). Pose finds people at any turn; the selfie model, the
    face's skin and the rules below all expect her upright."""
    if p is None or not all(visible(p, i) for i in (11, 12, 23, 24)):
        return False
    up = p[[23, 24], :2].mean(axis=0) - p[[11, 12], :2].mean(axis=0)    # shoulders to hips
    return bool(up[1] < 0 and np.degrees(np.arctan2(abs(up[0]), -up[1])) < UPSIDE_DOWN)
