"""The garment she wears, in two speeds with one model:

* `GarmentModel.build()` is the slow, careful step (about 0.2 s). It runs pose,
  lays out seeds (torso and legs = garment; face, hair, hands and background =
  not garment), lets GrabCut at 320 px settle the boundary by colour, then
  learns colour histograms of garment versus the rest of the person and a
  spatial prior. The kiosk reruns it about once a second in the background.
* `GarmentModel.matte()` is the cheap per-frame step (about 1 ms at 320 px):
  the current person mask times the histogram back-projection times the prior.

The slow step also splits the garment into its parts (`vision.garment_parts`),
so the per-frame matte can be limited to the part the product is.
"""

from __future__ import annotations

import cv2
import numpy as np

from vision.body import (GRABCUT_SEED, HIST_BINS, HIST_RANGES, Layout, bin_index, body_layout, fill_ellipse,
                         head_from_box, head_from_face, joined_to, keep_big_parts, mark_shoes, skin_rule, torso_core,
                         upper_torso_mask)
from vision.garment_parts import Parts, check_part, split_parts
from vision.hair import (HAIR_SURE, HAIR_TONE_CHEST, by_tone, hair_above_chin, hair_like, hair_tones, nearer_colour,
                         sleeves_like, upright)
from vision.person import face_ellipse, shrink, visible


WORK_WIDTH = 320
WORK_PIXELS = 320 * 640   # ... and at most this many pixels (a 9:16 frame stays 320 wide)
SKIN_MAX_SHARE = 0.75    # more of her than this "skin" means the skin model cannot tell (a summer
                         # outfit, bare arms and legs, is 0.5-0.7 of her, a sports outfit under a warm
                         # cast 0.67-0.77 over five views; a beige knit over a satin skirt 0.76-0.82,
                         # a cream dress 0.83-0.93)
SKIN_TINT = 0.4          # skin keeps at least this share of the face's tint (distance from grey in Lab)
SKIN_CHEST = 0.7          # share of her chest the skin model may claim before it is taken for a skin-toned top
SKIN_THIGHS = 0.5         # share of her thighs the skin model may claim before their lightness is checked
SKIN_THIGH_DL = 50        # ... and if their median lightness is this far from her face's (Lab L, 0-255),
                          # they are trousers of skin's chroma (khaki, brown check: 61-82 on tune), not
                          # bare legs (1-26 on tune: shorts, a sports outfit, a dress's bare shins)
SKIN_HOLE = 0.001        # a hole in her skin up to this share of her size is skin (JPEG blocks, a navel)
SKIN_SPECKLE = 0.04      # ... unless such holes are more of that piece of skin than this


def _resize_to(img: np.ndarray, width: int) -> np.ndarray:
    h, w = img.shape[:2]
    return shrink(img, (width, max(1, round(h * width / w))))


def _skin_mask(lab: np.ndarray, ycrcb: np.ndarray, face_pixels_lab: np.ndarray | None) -> np.ndarray:
    """Skin in the work image: close in chroma to the face, or the generic rule if no face."""
    rule = skin_rule(ycrcb)
    if face_pixels_lab is not None and len(face_pixels_lab) >= 30:
        ab = face_pixels_lab[:, 1:].astype(np.float32)
        mean = ab.mean(0)
        cov = np.cov(ab.T) + np.eye(2) * 4.0
        icov = np.linalg.inv(cov)
        d = lab[..., 1:].astype(np.float32) - mean
        m = np.einsum("...i,ij,...j->...", d, icov, d)
        skin = (m < 9.0) & (lab[..., 0] > 35)
        # A pale, brightly lit face is nearly grey; white or grey cloth is
        # greyer still, while skin keeps its tint in any light.
        face_tint = float(np.median(np.linalg.norm(ab - 128.0, axis=-1)))
        if face_tint >= 4.0:
            tint = np.linalg.norm(lab[skin][:, 1:].astype(np.float32) - 128.0, axis=-1)
            skin[skin] = tint >= SKIN_TINT * face_tint
        return skin
    return rule


def _legs_of_skins_chroma(lab: np.ndarray, claimed: np.ndarray, thighs: np.ndarray,
                          face_pixels_lab: np.ndarray) -> bool:
    """Whether the "skin" on her thighs is cloth of skin's chroma: the skin
    model (a* and b* only) claims most of them (`claimed`, of `thighs`), and
    they are far lighter or darker than her face. Bare legs in the same light
    are near her face's lightness."""
    if thighs.sum() < 30 or claimed.sum() < SKIN_THIGHS * thighs.sum():
        return False
    dl = abs(float(np.median(lab[claimed][:, 0])) - float(np.median(face_pixels_lab[:, 0])))
    return dl > SKIN_THIGH_DL


def _fill_small_holes(skin: np.ndarray, most: int) -> np.ndarray:
    """`skin` with its small holes filled: pieces of not-skin of at most `most`
    pixels that skin encloses (4-connected, so none leaks out through a
    corner; a strap or a hem joins the garment and is never one). Only in
    skin that is solid: a piece of "skin" riddled with holes (over
    SKIN_SPECKLE of its size) is cloth near her skin's colour, and its holes
    are right."""
    n, holes, stats, _ = cv2.connectedComponentsWithStats((~skin).astype(np.uint8), connectivity=4)
    small = stats[:, cv2.CC_STAT_AREA] <= most
    small[0] = False    # label 0 is skin itself
    if not small.any():
        return skin
    m, pieces, pstats, _ = cv2.connectedComponentsWithStats(skin.astype(np.uint8), connectivity=8)
    # the piece around each hole: any skin next to it belongs to that piece
    around = cv2.dilate(pieces.astype(np.uint16), np.ones((3, 3), np.uint8))
    in_hole = small[holes]
    owner = np.zeros(n, np.int64)
    np.maximum.at(owner, holes[in_hole], around[in_hole])
    holed = np.bincount(owner[small], weights=stats[small, cv2.CC_STAT_AREA], minlength=m)
    solid = holed <= SKIN_SPECKLE * pstats[:, cv2.CC_STAT_AREA]
    small &= solid[owner]
    return skin | small[holes]


class GarmentModel:
    """What the garment looks like and where it is; see the module docstring."""

    def __init__(self, hist_g: np.ndarray, hist_rest: np.ndarray, prior: np.ndarray,
                 layout: Layout | None, seg: np.ndarray):
        self.hist_g = hist_g
        self.hist_rest = hist_rest
        self.prior = prior            # float32 [0,1] at work size
        self.layout = layout
        self.seg = seg                # the GrabCut result, uint8 {0,1} at work size
        ratio = hist_g / (hist_g + hist_rest + 1e-3)
        self._lut = np.clip(ratio * 255.0, 0, 255).astype(np.float32)
        self.parts: Parts | None = None
        self.off: np.ndarray | None = None   # bool at work size: her head and standing shoes, never garment
        self._part_priors: dict[str, np.ndarray] = {}

    def part_mask(self, part: str) -> np.ndarray:
        """uint8 {0,1} at work size: the GrabCut garment, or one part of it."""
        check_part(part)
        if part == "none":
            return np.zeros_like(self.seg)
        if part == "full" or self.parts is None:
            return self.seg
        return self.parts.masks[part]

    def part_prior(self, part: str) -> np.ndarray:
        """The spatial prior restricted to `part` (cached: parts are fixed per model)."""
        if part == "full":
            return self.prior
        got = self._part_priors.get(part)
        if got is None:
            m = self.part_mask(part).astype(np.float32)
            k = max(3, int(0.02 * m.shape[1]) | 1)
            # blurred but not dilated: a grown upper would leak over the waistband
            got = self.prior * np.clip(cv2.GaussianBlur(m, (k, k), 0) * 1.4, 0.0, 1.0)
            self._part_priors[part] = got
        return got

    @classmethod
    def build(cls, bgr: np.ndarray, person: np.ndarray, pose_px: np.ndarray | None,
              iterations: int = 3, depth_mm: np.ndarray | None = None,
              face_box: tuple[int, int, int, int] | None = None,
              maybe: np.ndarray | None = None) -> "GarmentModel | None":
        """`person`: float mask (any size); `pose_px`: landmarks in pixels of
        `bgr`; `face_box`: a face detector's box in pixels of `bgr`; `maybe`:
        bool mask (any size) of pixels that may be hers though `person` says
        not (see `with_body`)."""
        h0, w0 = bgr.shape[:2]
        # a width, and a pixel budget for tall images (a strip is not upscaled to 320x2560)
        img = _resize_to(bgr, min(WORK_WIDTH, max(16, int((WORK_PIXELS * w0 / h0) ** 0.5))))
        h, w = img.shape[:2]
        s = w / w0
        pm = cv2.resize(person, (w, h), interpolation=cv2.INTER_LINEAR)
        lab = cv2.cvtColor(img, cv2.COLOR_BGR2Lab)
        ycrcb = cv2.cvtColor(img, cv2.COLOR_BGR2YCrCb)
        pose = None
        if pose_px is not None:
            pose = pose_px.copy()
            pose[:, :2] *= s
        layout = body_layout(pose, (w, h)) if pose is not None else None
        face_work = tuple(v * s for v in face_box) if face_box is not None else None
        if layout is not None and face_work is not None:
            layout = head_from_face(layout, face_work)

        inside = pm > 0.5
        if pose is not None:
            inside = _her_pieces(inside, pose)
        if inside.sum() < 0.01 * w * h:
            return None
        may = np.zeros((h, w), bool)
        if maybe is not None:
            may = cv2.resize(maybe.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
            may &= ~inside
        gc = np.full((h, w), cv2.GC_PR_BGD, np.uint8)
        gc[inside] = cv2.GC_PR_FGD
        outside = cv2.erode(((pm < 0.2) & ~may).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        gc[outside] = cv2.GC_BGD

        not_garment = np.zeros((h, w), np.uint8)
        unlikely = np.zeros((h, w), np.uint8)     # her hands and shoes: probably not garment, colour decides
        seeds = np.zeros((h, w), np.uint8)
        face_px = None
        if layout is not None:
            face = np.zeros((h, w), np.uint8)
            fill_ellipse(face, *layout.face_core, 1)
            face_pick = (face > 0) & inside & skin_rule(ycrcb)
            face_px = lab[face_pick] if face_pick.sum() >= 30 else None
            fill_ellipse(not_garment, layout.head_center, layout.head_axes, 1)
            for c, r in layout.hands:
                cv2.circle(unlikely, (round(c[0]), round(c[1])), max(1, round(r)), 1, -1)
            seeds[torso_core(layout, (h, w))] = 1
            thick = max(2, round(0.08 * np.linalg.norm(layout.torso[0] - layout.torso[1]) + 2))
            for leg in layout.legs:
                # thighs only: below the knee a skirt or a dress has ended and
                # her shins (bare, tights) are left to colour
                cv2.polylines(seeds, [np.round(leg[:2]).astype(np.int32)], False, 1, thick)
            above = np.zeros((h, w), bool)
            above[: max(0, int(layout.chin_y)), :] = True
            gc[above & inside] = cv2.GC_PR_BGD
            mark_shoes(unlikely, not_garment, pose)
        elif face_work is not None:
            # No pose but a face: the head around it, the garment below the chin.
            head_center, head_axes, chin_y = head_from_box(face_work)
            fill_ellipse(not_garment, head_center, head_axes, 1)
            chin, fh = int(chin_y), face_work[3]
            gc[:max(0, chin), :][inside[:max(0, chin), :]] = cv2.GC_PR_BGD
            band = np.zeros((h, w), np.uint8)
            band[min(h - 1, chin + int(0.5 * fh)):, :] = 1
            seeds = (cv2.erode(inside.astype(np.uint8), np.ones((15, 15), np.uint8)) & band)
        else:
            # No pose and no face: only the person mask says someone is there,
            # and the selfie model takes noise, a curtain or a wall hanging
            # for a person. No garment without her.
            return None

        if face_work is not None:
            # The head (from the face box when there is one) is certainly not
            # garment. That costs the bit of a sleeve raised over the head, but
            # keeps dark hair off a dark top, where colour cannot tell them apart.
            fill_ellipse(not_garment, *face_ellipse(face_work), 1)
        skin = _skin_mask(lab, ycrcb, face_px) & inside
        if skin.sum() > SKIN_MAX_SHARE * inside.sum():
            # A face whose colour is everywhere (warm light, clothes of her
            # skin's tone) tells skin from nothing: fall back to the generic
            # rule, and to no skin at all if that says the same.
            skin = skin_rule(ycrcb) & inside
            if skin.sum() > SKIN_MAX_SHARE * inside.sum():
                skin[:] = False
        # JPEG blocks punch holes in skin, and a seed in one teaches GrabCut
        # her skin as garment
        skin = _fill_small_holes(skin, round(SKIN_HOLE * inside.sum())) & inside
        upper_torso = upper_torso_mask(layout, (h, w)) if layout is not None else None
        bare = None
        skin_toned_top = False
        if layout is not None:
            core = torso_core(layout, (h, w))
            on_chest = upper_torso & inside
            if (skin & on_chest).sum() >= SKIN_CHEST * max(1, on_chest.sum()):
                # Her chest is her skin's colour nearly all over: a skin-toned
                # top (a beige knit, a cream dress), not bare skin; on her torso
                # the skin model is not to be trusted (her legs are judged below).
                skin &= ~core
                skin_toned_top = True
            thighs = (seeds > 0) & ~core & inside
            if face_px is not None and _legs_of_skins_chroma(lab, skin & thighs, thighs, face_px):
                # her legs are covered by cloth the face's chroma model cannot
                # tell from skin; below her hips it is not to be trusted
                skin[int(min(leg[0][1] for leg in layout.legs)):, :] = False
            # a forearm is judged against her top (the chest), a shin against her thighs
            top_px = upper_torso & inside & ~skin
            thigh_px = thighs & ~skin
            bare = _bare_limbs(lab, inside, pose, top_px if top_px.sum() >= 30 else seeds > 0,
                               thigh_px if thigh_px.sum() >= 30 else seeds > 0)
        if bare is not None:
            skin |= bare
        hair, hair_sample = hair_like(lab, inside & ~skin, layout)
        seeds = (seeds > 0) & inside & ~skin & (not_garment == 0) & (unlikely == 0)
        chest = seeds
        if upper_torso is not None:
            # judged on her chest, not on the legs too: a short dark top over
            # a long skirt is a hair-coloured top, not hair
            chest = seeds & upper_torso if (seeds & upper_torso).sum() >= 20 else seeds
        not_cloth = skin.copy()      # what must not be taken as a sample of her clothes' colours

        def hair_on_her(lock: np.ndarray, top: np.ndarray) -> None:
            # Hair lying on the torso (a braid, long hair) must not teach
            # GrabCut the garment; where it is much nearer her hair's colour
            # than her top's (sampled in `top`), it is surely hair: GrabCut
            # would take a dark lock back for a top that has that colour
            # anywhere (dark trousers), a beige knit's sides near blonde hair
            # stay its call.
            not_cloth[lock] = True
            seeds[lock] = False
            gc[lock & (gc == cv2.GC_PR_FGD)] = cv2.GC_PR_BGD
            gc[lock & (gc == cv2.GC_PR_BGD) & nearer_colour(lab, lock, top, HAIR_SURE)] = cv2.GC_BGD

        if hair is not None and not sleeves_like(hair, inside, pose):
            if (chest & hair).sum() < 0.5 * chest.sum():
                # unless the garment itself is hair-coloured (on her chest,
                # or an open jacket's sleeves)
                hair_on_her(hair, chest & ~hair)
            else:
                # a top of her hair's colour; if her hair has two tones (dark
                # roots, blonde lengths) and her top is one of them, the
                # other tone lying over it is still hair
                tones = hair_tones(hair_sample) if upright(layout.torso) else None
                if tones is not None:
                    for tone in by_tone(lab, hair, tones):
                        if (chest & tone).sum() < HAIR_TONE_CHEST * chest.sum():
                            hair_on_her(tone, chest & ~tone)
                if layout.shoulder_y > layout.chin_y:
                    # her hair is still hair above her chin (if pose has her
                    # shoulders below it at all); a collar there is lost,
                    # which is rarer than a ponytail
                    up = hair_above_chin(hair, layout, pose)
                    not_cloth |= up
                    seeds &= ~up
                    gc[up] = cv2.GC_BGD
        if seeds.sum() < 20:
            return None
        gc[(not_garment > 0) & inside] = cv2.GC_BGD
        gc[((unlikely > 0) | skin) & (gc != cv2.GC_BGD)] = cv2.GC_PR_BGD
        gc[seeds] = cv2.GC_FGD
        if depth_mm is not None:
            far = cv2.resize(depth_mm, (w, h), interpolation=cv2.INTER_NEAREST)
            cut = (far > 0) & (pm > 0.5)
            if cut.sum() > 50:
                med = float(np.median(far[cut]))
                gc[(far > med + 600) & (gc != cv2.GC_FGD)] = cv2.GC_BGD
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        try:
            cv2.setRNGSeed(GRABCUT_SEED)  # GrabCut's k-means start: same photo, same mask
            cv2.grabCut(img, gc, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
        except cv2.error:
            return None
        seg = ((gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)).astype(np.uint8)
        seg &= (inside | may).astype(np.uint8)
        if layout is not None:
            # GrabCut keeps bare arms and legs when the garment's colours
            # reach toward skin; skin off the torso is never garment.
            seg[skin & (_limb_ends(pose, w, h) > 0) & ~seeds] = 0
        if bare is not None:
            seg[bare] = 0
        # an unseeded piece in her hands' and shoes' places is a raised shoe
        # past a bare shin, or a hand: not garment
        seg = keep_big_parts(seg, seeds, unlikely > 0)
        # the cut as GrabCut made it: its shape is what tells the split a
        # dress from a top and a skirt, a bare midriff, the gap between knees
        as_cut = seg.copy()
        if layout is not None and not skin_toned_top:
            # GrabCut takes skin next to the cloth when her clothes' colours
            # reach toward it (a neckline in sun, thighs under shorts); bare
            # skin is never garment.
            seg[skin & ~seeds] = 0
        rest = inside & (seg == 0)
        hist_g = cv2.calcHist([lab], [0, 1, 2], seg, HIST_BINS, HIST_RANGES)
        hist_r = cv2.calcHist([lab], [0, 1, 2], rest.astype(np.uint8), HIST_BINS, HIST_RANGES)
        hist_g = cv2.GaussianBlur(hist_g.reshape(HIST_BINS[0], -1), (3, 3), 0).reshape(HIST_BINS)
        hist_g /= max(1.0, float(seg.sum()))
        hist_r /= max(1.0, float(rest.sum()))
        # Where the garment may be next frame: the GrabCut result, softened a
        # little for movement; never the head.
        k = max(3, int(0.03 * w) | 1)
        prior = cv2.dilate(seg, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))).astype(np.float32)
        if layout is not None:
            head = np.zeros((h, w), np.uint8)
            fill_ellipse(head, layout.head_center, layout.head_axes, 1)
            prior[head > 0] = 0
        prior = cv2.GaussianBlur(prior, (k, k), 0)
        model = cls(hist_g, hist_r, prior, layout, seg)
        model.parts = split_parts(img, lab, as_cut, pose, layout, not_cloth=not_cloth)
        for name, mask in model.parts.masks.items():
            model.parts.masks[name] = mask & seg
        # what a photo's second cut of the outline may not take either: her
        # head and the shoes she stands on (what the skin rules cut off is left
        # to that cut, which often regains a sleeve's or a hem's edge there)
        model.off = not_garment > 0
        return model

    def matte(self, bgr_small: np.ndarray, person_small: np.ndarray, part: str = "full") -> np.ndarray:
        """Per-frame soft matte of the garment (or one `part` of it) at the work size of `bgr_small`."""
        h, w = bgr_small.shape[:2]
        if part == "none":
            return np.zeros((h, w), np.float32)
        lab = cv2.cvtColor(bgr_small, cv2.COLOR_BGR2Lab)
        prob = self._lut.ravel()[bin_index(lab)] / 255.0
        prob = cv2.GaussianBlur(prob, (5, 5), 0)
        prior = self.part_prior(part)
        prior = prior if prior.shape == (h, w) else cv2.resize(prior, (w, h))
        person = person_small if person_small.shape == (h, w) else cv2.resize(person_small, (w, h))
        # The spatial prior carries the shape; colour vetoes what has moved in
        # front (a hand) or out of it.
        m = prior * person * (0.3 + 0.7 * np.clip((prob - 0.2) * 2.5, 0.0, 1.0))
        return np.clip((m - 0.25) * 2.0, 0.0, 1.0)


def _limb_ends(pose: np.ndarray, w: int, h: int) -> np.ndarray:
    """Forearms and shins (elbow to past the wrist, knee to ankle): where bare skin is common."""
    m = np.zeros((h, w), np.uint8)
    sw = float(np.linalg.norm(pose[11, :2] - pose[12, :2]))
    for a, b in ((13, 15), (14, 16), (25, 27), (26, 28)):
        if visible(pose, a, 0.3) and visible(pose, b, 0.3):
            p, q = pose[a, :2], pose[b, :2]
            cv2.line(m, tuple(np.round(p).astype(int)), tuple(np.round(q + 0.2 * (q - p)).astype(int)), 1,
                     max(2, round(0.3 * sw)))
    return m


BARE_DE = 22.0     # a forearm or shin this far (Lab) from her top (or her thighs) is bare skin
SKIN_DE = 14.0     # limb pixels this near that skin's colour are skin too


def _bare_limbs(lab: np.ndarray, inside: np.ndarray, pose: np.ndarray, top: np.ndarray,
                bottom: np.ndarray) -> np.ndarray | None:
    """Bare arms and legs, found by their own colour: a forearm whose colour is
    far from her top's (sampled in `top`), or a shin far from her bottom's
    (`bottom`), is skin, whatever the light (the face's colour misses arms in
    sunlight); then the pixels along that whole limb coloured like it are skin
    too. None when nothing was found."""
    if top.sum() < 30 or bottom.sum() < 30:
        return None
    h, w = inside.shape
    sw = float(np.linalg.norm(pose[11, :2] - pose[12, :2]))
    refs = np.median(lab[top].astype(np.float32), axis=0), np.median(lab[bottom].astype(np.float32), axis=0)
    out = np.zeros((h, w), bool)
    limbs = ((11, 13, 15), (12, 14, 16), (23, 25, 27), (24, 26, 28))
    for root, mid, end in limbs:
        if not (visible(pose, mid) and visible(pose, end)):
            continue
        garment = refs[root >= 23]
        a, b = pose[mid, :2], pose[end, :2]
        sample = np.zeros((h, w), np.uint8)
        p0, p1 = a + 0.35 * (b - a), a + 0.75 * (b - a)
        cv2.line(sample, tuple(np.round(p0).astype(int)), tuple(np.round(p1).astype(int)), 1,
                 max(1, round(0.08 * sw)))
        px = lab[(sample > 0) & inside].astype(np.float32)
        if len(px) < 15:
            continue
        ref = np.median(px, axis=0)
        if float(np.linalg.norm(ref - garment)) < BARE_DE:
            continue          # a sleeve, or trousers, of the torso's colour
        ycc = cv2.cvtColor(cv2.cvtColor(np.round(ref).astype(np.uint8)[None, None], cv2.COLOR_Lab2BGR),
                           cv2.COLOR_BGR2YCrCb)
        if not skin_rule(ycc)[0, 0]:
            continue          # a sleeve of another colour (a two-tone jacket), gloves
        limb = np.zeros((h, w), np.uint8)
        pts = [pose[root, :2]] if visible(pose, root, 0.3) else []
        pts += [a, b + 0.2 * (b - a)]
        cv2.polylines(limb, [np.round(np.array(pts)).astype(np.int32)], False, 1, max(2, round(0.3 * sw)))
        on = (limb > 0) & inside
        px = lab[on].astype(np.float32)
        d_skin = np.linalg.norm(px - ref, axis=-1)
        out[on] |= (d_skin < SKIN_DE) & (d_skin < np.linalg.norm(px - garment, axis=-1))
    return out if out.any() else None


HAND_POINTS = range(15, 23)   # pose's wrists, pinkies, index fingers and thumbs
HAND_PIECE = 0.15             # a piece holding only those, this share of her size or less, is her forearm


def _her_pieces(inside: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """The pieces of the person mask that hold one of her pose points: someone
    else in the photo (further back on a runway, a friend beside her) is not
    part of her outfit."""
    h, w = inside.shape
    near = np.zeros((h, w), np.uint8)
    hands = np.zeros((h, w), np.uint8)
    r = max(2, round(0.03 * w))       # a wrist point just off a forearm's edge still counts
    for i, (x, y) in enumerate(pose[:, :2]):
        if pose[i, 2] >= 0.5:
            cv2.circle(hands if i in HAND_POINTS else near, (round(float(x)), round(float(y))), r, 1, -1)
    mine = joined_to(inside, near > 0)
    # a piece that holds only her hand is her forearm split off at the elbow,
    # if small; a big one is a table she leans on or someone she holds by the
    # hand, and of it only her hand counts
    _, labels, stats, _ = cv2.connectedComponentsWithStats((inside & ~mine).astype(np.uint8), connectivity=8)
    held = np.unique(labels[hands > 0])
    small = [j for j in held[held > 0] if stats[j, cv2.CC_STAT_AREA] <= HAND_PIECE * max(1, int(mine.sum()))]
    return mine | np.isin(labels, small) | (inside & (hands > 0))


def refine_to(mask: np.ndarray, bgr: np.ndarray, feather_px: int = 4, scale: float = 0.0) -> np.ndarray:
    """Bring a soft mask to `bgr`'s size with edges that follow the image.

    The guided filter runs at 1/`scale` of full size (about 2x the mask's own
    resolution is plenty) and is then upsampled; `scale` 0 picks it from the
    mask's size.
    """
    h, w = bgr.shape[:2]
    if not scale:
        scale = max(1.0, w / mask.shape[1] / 2)
    gw, gh = max(2, round(w / scale)), max(2, round(h / scale))
    src = cv2.resize(mask.astype(np.float32), (gw, gh), interpolation=cv2.INTER_LINEAR)
    guide = cv2.cvtColor(shrink(bgr, (gw, gh)), cv2.COLOR_BGR2GRAY)
    try:
        src = cv2.ximgproc.guidedFilter(guide.astype(np.float32) / 255.0, src, 3, 1e-3)
    except AttributeError:  # opencv without contrib
        src = cv2.GaussianBlur(src, (0, 0), 1.5)
    if feather_px > 0:
        src = cv2.GaussianBlur(src, (0, 0), max(0.5, feather_px / scale / 2))
    up = cv2.resize(src, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(up, 0.0, 1.0)
