"""The careful path for single photos (`mirror segment`, `mirror recolor`).

`GarmentModel`'s slow step, its outline cut again at a higher resolution
(`refine_outline`), then soft edges at full resolution; all of it on five
views of the photo (`PHOTO_VIEWS`), whose median is the answer.
"""

from __future__ import annotations

import cv2
import numpy as np

from vision.body import GRABCUT_SEED, fill_ellipse
from vision.garment import GarmentModel, refine_to
from vision.garment_parts import check_part
from vision.hands import HandTracker, hand_mask
from vision.person import (FaceFinder, PersonSegmenter, PoseEstimator, box_with_margin, face_ellipse, person_box,
                           upside_down, with_body)
from vision.shopper import kept_her, only_her


PHOTO_FOREARM = 0.5      # how far past the wrist (in palm lengths) a photo's hand is cut out
OUTLINE_SCALE = 1.5   # a photo's outline is cut again at this multiple of the work size (at most full size)
OUTLINE_BAND = 0.02   # ... within this share of that width either side of the first cut


def refine_outline(bgr: np.ndarray, seg: np.ndarray, off: np.ndarray | None = None) -> np.ndarray:
    """The garment `seg` (work size, {0,1}) cut again along its outline at a
    higher resolution: uint8 {0,1} at OUTLINE_SCALE x the work size. The work
    size cut places the outline to a few photo pixels, and a band GrabCut on
    the sharper image snaps it to the cloth's edge. `off` (work size, bool):
    pixels the second cut may not take (her head, the shoes she stands on).
    Photos only: it costs more than a kiosk frame has."""
    h, w = bgr.shape[:2]
    tw = min(w, round(seg.shape[1] * OUTLINE_SCALE))
    th = max(1, round(h * tw / w))
    up = cv2.resize(seg.astype(np.float32), (tw, th), interpolation=cv2.INTER_LINEAR) >= 0.5
    if up.sum() < 50:
        return up.astype(np.uint8)
    k = max(2, round(OUTLINE_BAND * tw))
    ker = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1))
    outer = cv2.dilate(up.astype(np.uint8), ker) > 0
    gc = np.full((th, tw), cv2.GC_BGD, np.uint8)
    gc[outer] = cv2.GC_PR_BGD
    gc[up] = cv2.GC_PR_FGD
    gc[cv2.erode(up.astype(np.uint8), ker) > 0] = cv2.GC_FGD
    if off is not None:
        gc[cv2.resize(off.astype(np.uint8), (tw, th), interpolation=cv2.INTER_NEAREST) > 0] = cv2.GC_BGD
    ys, xs = np.nonzero(outer)
    y0, y1, x0, x1 = max(0, ys.min() - 2), ys.max() + 3, max(0, xs.min() - 2), xs.max() + 3
    img = cv2.resize(bgr, (tw, th), interpolation=cv2.INTER_AREA) if tw != w else bgr
    box = gc[y0:y1, x0:x1].copy()
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    try:
        cv2.setRNGSeed(GRABCUT_SEED)
        cv2.grabCut(np.ascontiguousarray(img[y0:y1, x0:x1]), box, None, bgd, fgd, 2, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        return up.astype(np.uint8)
    out = np.zeros((th, tw), np.uint8)
    out[y0:y1, x0:x1] = (box == cv2.GC_FGD) | (box == cv2.GC_PR_FGD)
    return out


def part_of_outline(fine: np.ndarray, seg: np.ndarray, part: np.ndarray) -> np.ndarray:
    """`part` (work size) carried onto the refined outline `fine`: each of its
    pixels takes the part of the nearest pixel the first cut gave to any part,
    so the split between top and bottom stays where it was and every pixel
    goes to exactly one part."""
    size = (fine.shape[1], fine.shape[0])
    mine = cv2.resize(part.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    first = cv2.resize(seg.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    if not mine.any():
        return np.zeros_like(fine)
    if not (first & ~mine).any():
        return fine
    # DIST_LABEL_PIXEL numbers the zero pixels of its input 1, 2, ... in raster order
    _, nearest = cv2.distanceTransformWithLabels((~first).astype(np.uint8), cv2.DIST_L2, 3,
                                                 labelType=cv2.DIST_LABEL_PIXEL)
    owner = np.concatenate([[False], mine[first]])
    return ((fine > 0) & owner[nearest]).astype(np.uint8)



# (scale, mirrored, BGR gains or None): the views a photo is cut in; the last
# two as a white balance set for bluer or redder light would have left it
PHOTO_VIEWS = ((1.0, False, None), (1.0, True, None), (0.8, False, None),
               (1.0, False, (1.12, 1.0, 0.88)), (1.0, True, (0.88, 1.0, 1.12)))


def white_balanced(bgr: np.ndarray, gains: tuple[float, float, float]) -> np.ndarray:
    """`bgr` (uint8) with each channel multiplied by its gain, clipped."""
    return np.clip(bgr.astype(np.float32) * np.array(gains, np.float32), 0, 255).astype(np.uint8)


class PhotoSegmenter:
    """The careful path for single photos (`mirror segment`, `mirror recolor`)."""

    def __init__(self):
        self.person = PersonSegmenter(width=256)
        self.pose = PoseEstimator(static=True, body_mask=True)
        self.faces = FaceFinder()
        self.hands = HandTracker(static=True, model="full", max_hands=2, width=None)
        self.last_model: GarmentModel | None = None

    def garment(self, bgr: np.ndarray, feather_px: int = 3, part: str = "full") -> np.ndarray:
        """Soft garment matte, float32 [0,1], same size as `bgr` (zeros if no person);
        `part` picks one part of her clothing (see PARTS)."""
        return self.garments(bgr, feather_px, (part,))[part]

    def garments(self, bgr: np.ndarray, feather_px: int = 3,
                 parts: tuple[str, ...] = ("upper", "lower", "full")) -> dict[str, np.ndarray]:
        """`garment` for several parts at once, from one cut of each view.

        The careful cut is knife-edged on some photos: the same photo
        mirrored, a little smaller or in other light can read a dress as a
        top and a skirt, or join a crop top to trousers across her midriff.
        So the photo is cut in each of PHOTO_VIEWS, and a pixel is garment
        where most views say so: the per-pixel median of the views' mattes,
        which keeps their soft edges. `last_model` is the photo's own
        (unmirrored, full-size) view. A photo of her upside down is cut
        turned the right way up."""
        for part in parts:
            check_part(part)
        h, w = bgr.shape[:2]
        if all(part == "none" for part in parts):
            return {part: np.zeros((h, w), np.float32) for part in parts}
        first = self.pose.landmarks_and_body(bgr)
        if upside_down(first[0]):
            # cut the photo the right way up, and turn the mattes back
            turned = self._in_views(np.ascontiguousarray(cv2.rotate(bgr, cv2.ROTATE_180)), feather_px, parts)
            return {part: cv2.rotate(m, cv2.ROTATE_180) for part, m in turned.items()}
        return self._in_views(bgr, feather_px, parts, first)

    def _in_views(self, bgr: np.ndarray, feather_px: int, parts: tuple[str, ...],
                  first: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """The per-pixel median of the mattes of PHOTO_VIEWS (see `garments`).
        `first`: pose's answer on `bgr` as it is, when already made; the view
        that is the photo unchanged uses it."""
        h, w = bgr.shape[:2]
        votes: dict[str, list[np.ndarray]] = {part: [] for part in parts}
        own = None
        for i, (scale, mirrored, gains) in enumerate(PHOTO_VIEWS):
            view = bgr[:, ::-1] if mirrored else bgr
            if gains is not None:
                view = white_balanced(view, gains)
            if scale != 1.0:
                view = cv2.resize(view, (max(1, round(w * scale)), max(1, round(h * scale))),
                                  interpolation=cv2.INTER_AREA)
            unchanged = scale == 1.0 and not mirrored and gains is None
            mattes = self._one_view(np.ascontiguousarray(view), feather_px, parts, first if unchanged else None)
            if i == 0:
                own = self.last_model
            for part, m in mattes.items():
                if scale != 1.0:
                    m = cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)
                votes[part].append(m[:, ::-1] if mirrored else m)
        self.last_model = own
        return {part: np.median(np.stack(v), axis=0).astype(np.float32) for part, v in votes.items()}

    def _one_view(self, bgr: np.ndarray, feather_px: int, parts: tuple[str, ...],
                  first: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """The careful path on one view. Anyone beside her is painted out
        first (`only_her`, given `first`: pose's answer on `bgr`, when already
        made). A person who fills only part of the photo (further from the
        camera) would get few pixels in the models and in GrabCut, so it runs
        on a crop around her and the mattes are pasted back."""
        h, w = bgr.shape[:2]
        person = self.person.process(bgr)
        her = only_her(bgr, person, self.pose, first)
        if her is not None:
            person_painted = self.person.process(her.painted)
            if kept_her(person, person_painted, her.body):
                bgr, person = her.painted, person_painted
        box = self._person_box(bgr, person)
        if box is not None:
            x0, y0, x1, y1 = box
            if (x1 - x0) * (y1 - y0) < 0.6 * w * h:
                crop = bgr[y0:y1, x0:x1]
                out = {}
                for part, m in self._garment(crop, feather_px, self.person.process(crop, halves=True), parts).items():
                    out[part] = np.zeros((h, w), np.float32)
                    out[part][y0:y1, x0:x1] = m
                return out
        return self._garment(bgr, feather_px, self.person.add_halves(bgr, person), parts)

    def _person_box(self, bgr: np.ndarray, person: np.ndarray) -> tuple[int, int, int, int] | None:
        """Her box (x0, y0, x1, y1) with a margin, in pixels of `bgr`, or None."""
        h, w = bgr.shape[:2]
        box = person_box(person, (w, h), 0.15)
        if box is not None:
            return box
        # Too small for the selfie model at 256 px; the face detector
        # still finds her face, and a body is about four faces wide.
        face = self.faces.process(bgr)
        if face is None:
            return None
        fx, fy, fw, fh = face
        return box_with_margin(fx - 1.8 * fw, fy - 0.6 * fh, 4.6 * fw, 9.0 * fh, 0.15, (w, h))

    def _garment(self, bgr: np.ndarray, feather_px: int, person: np.ndarray,
                 parts: tuple[str, ...]) -> dict[str, np.ndarray]:
        """The careful path on `bgr`; `person`: its person mask, with halves."""
        h, w = bgr.shape[:2]
        pose, body = self.pose.landmarks_and_body(bgr)
        her, maybe = with_body(person, body)
        face = self.faces.process(bgr, pose)
        model = GarmentModel.build(bgr, her, pose, iterations=4, face_box=face, maybe=maybe)
        self.last_model = model
        if model is None:
            return {part: np.zeros((h, w), np.float32) for part in parts}
        person_full = np.clip(cv2.resize(np.maximum(her, person), (w, h), interpolation=cv2.INTER_LINEAR) * 1.5, 0, 1)
        on_face = None
        if face is not None:
            # The edge refinement can spill a few pixels into the eyes next
            # to a sleeve; the face is never garment.
            keep_out = np.zeros((h, w), np.uint8)
            fill_ellipse(keep_out, *face_ellipse(face), 1)
            on_face = keep_out > 0
        hands = self.hands.process(bgr)
        # her hands, on her hips or over her top, are never garment
        not_hands = 1.0 - hand_mask(hands, (h, w), forearm=PHOTO_FOREARM) if hands else None
        fine = None
        out = {}
        for part in parts:
            if part == "none":
                out[part] = np.zeros((h, w), np.float32)
                continue
            if part == "full" or model.part_mask(part).any():
                fine = refine_outline(bgr, model.seg, model.off) if fine is None else fine
                mask = fine if part == "full" else part_of_outline(fine, model.seg, model.part_mask(part))
            else:
                mask = model.part_mask(part)        # nothing of that part (a dress has no lower)
            matte = refine_to(mask, bgr, feather_px) * person_full
            if on_face is not None:
                matte[on_face] = 0.0
            if not_hands is not None:
                matte *= not_hands
            out[part] = matte
        return out
