"""The garment's parts: upper, lower, dress, full (`PARTS`).

`split_parts` uses pose for the waist and sleeves, Lab colour on chest and
thighs for the hem, and a second small GrabCut between them. Every threshold
here was tuned on tests/data/unseen/garments/tune (see its PROVENANCE.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vision.body import (GRABCUT_SEED, HIST_BINS, HIST_RANGES, Layout, bin_index, joined_to, keep_big_parts, mark_shoes,
                         torso_core, upper_torso_mask)
from vision.person import visible


# Which part of her clothing to recolour (the catalogue says it per product):
# upper = the top, or a dress as a whole; lower = trousers or a skirt;
# dress = the top together with whatever continues it in its colour below the
# waist; full = all her clothing; none = nothing (shoes, make-up).
PARTS = ("upper", "lower", "dress", "full", "none")

# Tuned on tests/data/unseen/garments/tune (see its PROVENANCE.md).
WAIST_FRAC = 0.12        # waistband above the hip joints, as a share of shoulder-to-hip length
SAME_COLOUR_DE = 12.0    # Lab distance under which top and bottom count as one colour,
SAME_HUE = 0.7           # ... with their a/b apart by under this share of the stronger chroma
HUE_FLOOR = 6.0          # ... (at least of this chroma: two greys differ in a/b by noise)
SHADE_RATIO = 0.65       # lightness ratio down to which one cloth may be half in shade
SAME_CLOTH_OVERLAP = 0.7  # histogram overlap over which two regions are one (printed) cloth
CLOTH_BINS = [6, 8, 8]     # coarse Lab bins for that overlap
DRESS_GAP_FILL = 0.55    # garment share of the gap between the knees that makes it a skirt
KNEES_DOWN = 0.4        # ... looked at only with her knees this far below the waist line on average (torso lengths)
LEAN_MAX = 0.5          # tan of the torso's lean from upright past which pose is guessing hips it cannot see (27 degrees)
LEAN_LEGS = 1.0         # ... or, with both knees seen well below her hips, this (45 degrees: a side bend)
KNEES_UNDER = 0.5       # "well below": in torso lengths, straight down from each hip


class PartError(ValueError):
    pass


def check_part(part: str) -> str:
    if part not in PARTS:
        raise PartError(f"unknown garment part {part!r}; use one of {', '.join(PARTS)}")
    return part


@dataclass
class Parts:
    masks: dict[str, np.ndarray]     # upper, lower, dress: uint8 {0,1} at work size
    kind: str                        # separates | dress | one_colour | top_only | no_pose


def _lab_ref(px: np.ndarray) -> np.ndarray:
    """Median of 8-bit OpenCV Lab pixels in CIE units (L 0..100, a/b signed)."""
    m = np.median(px.astype(np.float32), axis=0)
    return np.array([m[0] * 100 / 255, m[1] - 128, m[2] - 128], np.float32)


def split_parts(img: np.ndarray, lab: np.ndarray, seg: np.ndarray, pose: np.ndarray | None,
                layout: Layout | None, not_cloth: np.ndarray | None = None) -> Parts:
    """Split the garment (`seg`, work size) into upper and lower by pose and colour.

    The waistband lies a little above the hip joints; sleeves follow the arms.
    When the top and the bottom differ in colour (sampled on the chest and the
    thighs), GrabCut restricted to the garment finds the hem between them; when
    they do not, it is a dress if the garment fills the gap between the knees,
    otherwise a one-colour outfit split at the waist line. `not_cloth` (bool,
    work size: her skin, hair) and her shoes are never taken as those samples."""
    h, w = seg.shape
    seg = seg.astype(np.uint8)
    empty = np.zeros_like(seg)
    if pose is None or layout is None:
        return Parts({"upper": seg, "lower": empty, "dress": seg}, "no_pose")
    ls, rs = pose[11, :2], pose[12, :2]
    sw = float(np.linalg.norm(ls - rs))
    mid_s = (ls + rs) / 2
    hips_seen = visible(pose, 23, 0.3) and visible(pose, 24, 0.3) and max(pose[23, 1], pose[24, 1]) < h * 1.02
    if not hips_seen:
        # only her top half in view: all of it is the top
        return Parts({"upper": seg, "lower": empty, "dress": seg}, "top_only")
    lh, rh = pose[23, :2], pose[24, :2]
    mid_h = (lh + rh) / 2
    axis = mid_h - mid_s
    torso_len = float(np.linalg.norm(axis))
    if torso_len < 4:
        return Parts({"upper": seg, "lower": empty, "dress": seg}, "no_pose")
    legs_seen = all(visible(pose, k, 0.5) and pose[k, 1] - pose[hip, 1] > KNEES_UNDER * torso_len
                    for hip, k in ((23, 25), (24, 26)))
    if mid_h[1] > h - 0.25 * torso_len or abs(axis[0]) > (LEAN_LEGS if legs_seen else LEAN_MAX) * axis[1]:
        # hips at the bottom edge (a waist-up photo), or a torso leaning so far
        # that pose is guessing hips it cannot see (unless her legs stand
        # below them, as in a side bend; bent over further, the waist line
        # across her torso no longer follows a hem): no trousers to find
        return Parts({"upper": seg, "lower": empty, "dress": seg}, "top_only")
    axis = axis / torso_len
    hip_xs = (int(min(lh[0], rh[0])), int(max(lh[0], rh[0])))
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    waist = mid_h - axis * WAIST_FRAC * torso_len
    # signed distance below the waist line, in torso lengths
    below = _below(xs, ys, waist, axis, torso_len)
    straight = below
    below = _along_legs(below, pose, waist, axis, torso_len, xs, ys)

    arms = np.zeros((h, w), np.uint8)
    thick = max(2, round(0.22 * sw))
    for s_i, e_i, w_i in ((11, 13, 15), (12, 14, 16)):
        if visible(pose, e_i, 0.3):
            pts = [pose[s_i, :2], pose[e_i, :2]]
            if visible(pose, w_i, 0.3):
                pts.append(pose[e_i, :2] + 0.7 * (pose[w_i, :2] - pose[e_i, :2]))
            cv2.polylines(arms, [np.round(np.array(pts)).astype(np.int32)], False, 1, thick)
    # her forearms resting on raised knees: there the cloth is her legs'
    arms[below > straight] = 0
    chest = torso_core(layout, (h, w)) & (below < -0.15)
    thighs = np.zeros((h, w), np.uint8)
    knees = []
    for hip, knee in ((23, 25), (24, 26)):
        if visible(pose, knee, 0.3):
            a = pose[hip, :2] + 0.3 * (pose[knee, :2] - pose[hip, :2])
            b = pose[hip, :2] + 0.85 * (pose[knee, :2] - pose[hip, :2])
            cv2.line(thighs, tuple(np.round(a).astype(int)), tuple(np.round(b).astype(int)), 1,
                     max(2, round(0.12 * sw)))
            knees.append(pose[knee, :2])
    g = seg > 0
    upper_torso = upper_torso_mask(layout, (h, w)) & g
    # a trouser band rising into the torso core across a bare midriff is no sample of the top
    chest = joined_to(chest & g, upper_torso)
    up_seed = (chest | ((arms > 0) & (below < 0.4))) & g
    lo_seed = (thighs > 0) & g & (below > 0.25)
    not_cloth = np.zeros((h, w), bool) if not_cloth is None else np.asarray(not_cloth, bool)
    # her forearms on her lap, her hair over her chest (the cut may keep
    # them) are no samples of the top's or the bottom's colour
    up_seed &= ~not_cloth
    lo_seed &= ~not_cloth
    if (over := _top_over_thighs(lab, g, up_seed, lo_seed)) is not None:
        lo_seed &= ~over

    under = chest & up_seed       # her top's sample without the sleeves (an open jacket's)
    geometric_upper = g & ((below < 0) | (arms > 0))
    kind = "separates"
    # the torso's upper half is surely the top, wherever the waist is
    pieces = _pieces_apart(g, upper_torso, lo_seed)
    if pieces is not None and (across := _forearms_across(pose, (h, w), sw)).any() and \
            _pieces_apart(g | across, upper_torso, lo_seed) is None:
        # the bare band between them is her forearms lying across her (crossed
        # arms), not her midriff: one top, cut in two by her arms
        pieces = None
    middle = np.abs((xs - mid_h[0]) * -axis[1] + (ys - mid_h[1]) * axis[0]) < 0.3 * sw   # down her body's axis
    if pieces is not None:
        # skin all the way across between them (a crop top, a bare midriff):
        # two garments, whatever their colours
        upper = pieces
    elif (gap := _midriff_gap(g, below, middle)) is not None and not _same_cloth(lab, *gap):
        # a bare midriff across her body, though something beside her (an arm,
        # hair, the wall the person mask took) joins top and bottom, or pose
        # gave no sample of the bottom (of one colour above and below, it is
        # more likely bare forearms across a top)
        above, under = gap
        up_gap = (up_seed | above) & ~not_cloth
        upper = _grabcut_split(img, g, up_gap, (lo_seed | under) & ~not_cloth, below)
        # the top is what hangs together with its seeds (not a raised shoe of its colour)
        upper = joined_to(upper, up_gap)
    elif up_seed.sum() < 15:
        upper = geometric_upper
        kind = "one_colour"
    elif lo_seed.sum() < 15:
        # bare legs (shorts, a short skirt) or legs out of view: the hem is
        # where the top's colour stops, if anything of her is well below the waist
        feet = np.zeros((h, w), np.uint8)
        mark_shoes(feet, np.zeros_like(feet), pose)
        # ... not her shoes: a black shoe is no sample of grey shorts
        low = g & (below > 0.6) & ~up_seed & (feet == 0) & ~not_cloth
        if low.sum() < 15:
            return Parts({"upper": seg, "lower": empty, "dress": seg}, "top_only")
        if not _same_cloth(lab, up_seed, low):
            upper = _grabcut_split(img, g, up_seed, low, below)
        elif _covers_knees(g, pose) and _gap_fill(g, mid_h, [pose[25, :2], pose[26, :2]]) >= DRESS_GAP_FILL:
            # her knees hidden under the top's own cloth: a long dress
            upper, kind = g, "dress"
        else:
            upper, kind = _one_colour_top(lab, g, below, arms, hip_xs), "one_colour"
    else:
        # a knee pose cannot see is often under the skirt itself: it is still
        # where pose puts it, and the gap between the knees is tested
        pair = [pose[25, :2], pose[26, :2]] if knees else []
        # (knees raised to her hips, sitting, leave her lap between them: no skirt's test;
        # one knee a little raised, legs crossed on a stool, is no lap: on average)
        lowered = bool(pair) and np.mean([_below(*k, waist, axis, torso_len) for k in pair]) >= KNEES_DOWN
        filled = lowered and (_gap_fill(g, mid_h, pair) >= DRESS_GAP_FILL or _short_skirt(g, mid_h, pair))
        # legs of another colour under a flare are tights or boots under a skirt
        skirt = filled and ((_legwear(lab, g, pose, lo_seed) is not None and _flares_over_shins(g, pose))
                            or not _trouser_legs(g, pose, mid_h))
        if not _same_cloth(lab, up_seed, lo_seed) and not (
                skirt and under.sum() >= 15 and _same_cloth(lab, under, lo_seed)):
            upper = _grabcut_split(img, g, up_seed, lo_seed, below)
        elif skirt:
            # one cloth from her chest to below her knees: a dress (under an
            # open jacket or cardigan, whose sleeves are another colour)
            upper, kind = g, "dress"
        else:
            # over the gap between her knees, a long coat or a dress may hang lower than a jacket
            upper = _one_colour_top(lab, g, below, arms, hip_xs, HEM_MAX_LONG if filled else HEM_MAX)
            kind = "one_colour"
    if kind == "dress" and (legs := _legwear(lab, g, pose, under | lo_seed)) is not None:
        # the dress ends where its colours give way to her tights' or boots'
        # (sampled without the sleeves: an open jacket may be the tights'
        # colour); down to her crotch it is all dress, or what is over it
        upper = _grabcut_split(img, g, under | lo_seed, legs & ~under & ~lo_seed, below)
        upper |= g & (below < LEGS_BELOW)
    upper = upper & g
    lower = g & ~upper
    if kind == "dress":
        # a dress is an upper garment as a whole; she wears no trousers or
        # skirt (tights or boots under it are in no part, only in `full`)
        lower = np.zeros_like(g)
        dress = upper
    elif kind == "one_colour":
        dress = g if len(knees) < 2 else upper
    else:
        dress = upper | (lower & _like(lab, upper, lower))
    return Parts({"upper": upper.astype(np.uint8), "lower": lower.astype(np.uint8),
                  "dress": dress.astype(np.uint8)}, kind)


LEG_FROM = 0.3   # share of the thigh from the hip after which her leg, not the waist line, says how far down she is
HIP_FLANK = 0.5  # her torso reaches past each hip joint by this share of the distance between them


def _below(x, y, waist: np.ndarray, axis: np.ndarray, torso_len: float):
    """How far (x, y) lies below the waist line along her body's `axis`, in
    torso lengths: pixel grids or one point."""
    return ((x - waist[0]) * axis[0] + (y - waist[1]) * axis[1]) / torso_len


def _seg_dist(xs: np.ndarray, ys: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance of each pixel from segment a-b, and where along it (0..1) it lies."""
    d = b - a
    t = np.clip(((xs - a[0]) * d[0] + (ys - a[1]) * d[1]) / max(1e-6, float(d @ d)), 0.0, 1.0)
    return np.hypot(xs - (a[0] + t * d[0]), ys - (a[1] + t * d[1])), t


def _along_legs(below: np.ndarray, pose: np.ndarray, waist: np.ndarray, axis: np.ndarray,
                torso_len: float, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """`below` (torso lengths under the waist line) where her legs go: a
    sitting woman's raised thighs are as far down her body as a standing
    one's, though the waist line's straight measure puts them at or above
    her waist. For a knee under KNEES_DOWN, pixels off her torso and nearer
    that thigh (past LEG_FROM of it) or shin than her torso's axis take their
    distance along the leg, if that is further. (A standing or walking leg
    keeps the straight measure the split's rules were made on.)"""
    raised = [leg for leg in ((23, 25, 27), (24, 26, 28)) if visible(pose, leg[1], 0.3)
              and _below(*pose[leg[1], :2], waist, axis, torso_len) < KNEES_DOWN]
    if not raised:
        return below
    lh, rh = pose[23, :2], pose[24, :2]
    flank = HIP_FLANK * (lh - rh)
    torso = np.zeros(below.shape, np.uint8)
    cv2.fillConvexPoly(torso, np.round(np.array([pose[11, :2], pose[12, :2], rh - flank, lh + flank])).astype(np.int32), 1)
    off = torso == 0
    torso_d, _ = _seg_dist(xs, ys, (pose[11, :2] + pose[12, :2]) / 2, (lh + rh) / 2)
    out = below
    for hip, knee, ankle in raised:
        h_pt, k_pt = pose[hip, :2], pose[knee, :2]
        thigh = float(np.linalg.norm(k_pt - h_pt))
        d, t = _seg_dist(xs, ys, h_pt, k_pt)
        along = (WAIST_FRAC * torso_len + t * thigh) / torso_len
        out = np.where(off & (d < torso_d) & (t >= LEG_FROM), np.maximum(out, along), out)
        if visible(pose, ankle, 0.3):
            a_pt = pose[ankle, :2]
            d2, t2 = _seg_dist(xs, ys, k_pt, a_pt)
            along2 = (WAIST_FRAC * torso_len + thigh + t2 * float(np.linalg.norm(a_pt - k_pt))) / torso_len
            out = np.where(off & (d2 < torso_d) & (d2 < d), np.maximum(out, along2), out)
    return out


GAP_BARE = 0.1     # garment share of a row across her middle that makes it bare skin
GAP_CLOTH = 0.6    # ... and that makes it clothed
GAP_ROW = 0.03     # a row's height, in torso lengths below the waist line
GAP_ROWS = (-0.8, 0.3)   # the rows looked at: from her chest to her upper thighs
GAP_LOWEST = 0.1   # a bare row lies above this (her hips): lower, bare skin is her thighs
GAP_REACH = 8      # rows looked at above and below a bare one, and the seeds' height
GAP_MIN_PX = 5     # pixels a row needs to count at all


def _midriff_gap(g: np.ndarray, below: np.ndarray, strip: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """A bare midriff: rows across her middle (along the waist line, within
    `strip`, a band down her body's axis) with no garment, above her hips and
    between clothed rows. Returns the garment in the strip just above the
    bare rows and just under them, or None."""
    edges = np.arange(GAP_ROWS[0], GAP_ROWS[1] + GAP_ROW / 2, GAP_ROW)
    n = len(edges) - 1
    row = np.digitize(below, edges) - 1
    row[~strip | (row >= n)] = -1
    area = np.bincount(row[row >= 0], minlength=n)
    cloth = np.bincount(row[(row >= 0) & g], minlength=n)
    cover = np.where(area >= GAP_MIN_PX, cloth / np.maximum(area, 1), np.nan)
    clothed = cover > GAP_CLOTH
    for i in np.nonzero((cover < GAP_BARE) & (edges[:-1] < GAP_LOWEST))[0]:
        lo_i = max(0, i - GAP_REACH)
        up = np.nonzero(clothed[lo_i:i])[0]
        down = np.nonzero(clothed[i + 1:i + 1 + GAP_REACH])[0]
        if len(up) == 0 or len(down) == 0:
            continue
        top, bottom = lo_i + up[-1], i + 1 + down[0]
        above = g & (row <= top) & (row > max(-1, top - GAP_REACH))
        under = g & (row >= bottom) & (row < bottom + GAP_REACH)
        if above.sum() >= 15 and under.sum() >= 15:
            return above, under
    return None


OVER_THIGHS_REST = 0.3   # share of the thighs' sample that must remain once the top's cloth is taken off it


def _top_over_thighs(lab: np.ndarray, g: np.ndarray, up_seed: np.ndarray, lo_seed: np.ndarray) -> np.ndarray | None:
    """The part of the thighs' sample that is the top's cloth hanging down from
    her chest (a long coat or cardigan, sleeves on her lap), when the rest of
    that sample is another colour: it is no sample of the bottom."""
    if up_seed.sum() < 15 or lo_seed.sum() < 15:
        return None
    like = _like(lab, up_seed, lo_seed) & g
    if not (like & up_seed).any():
        return None
    over = joined_to(like, up_seed) & lo_seed
    rest = lo_seed & ~over
    if not over.any() or rest.sum() < max(15, OVER_THIGHS_REST * lo_seed.sum()) or _same_cloth(lab, up_seed, rest):
        return None
    return over


HEM_MAX = 0.6      # lowest jacket hem, in torso lengths below the waist line
HEM_MAX_LONG = 1.5  # ... of a long coat or a dress over legs of its colour (the gap between her knees filled)
HEM_EDGE = 1.8     # a hem's edge is this many times the outfit's usual shading edges
HEM_MIN_EDGE = 6.0  # ... and at least this strong (Sobel of L, 0..255): not flat cloth's noise
HEM_ACROSS = 0.7   # share of her front's columns the hem's edge must cross


def _one_colour_top(lab: np.ndarray, g: np.ndarray, below: np.ndarray, arms: np.ndarray,
                    hip_xs: tuple[int, int], hem_max: float = HEM_MAX) -> np.ndarray:
    """The top of a one-colour outfit: down to the waist line, or to a jacket's
    hem (which lies lower than a tucked-in top's waistband), and the sleeves.
    With no jacket's hem, a longer one is looked for down to `hem_max`."""
    return g & ((below < _hem_level(lab, g, below, hip_xs, hem_max)) | (arms > 0))


def _hem_level(lab: np.ndarray, g: np.ndarray, below: np.ndarray, xs: tuple[int, int],
               hem_max: float = HEM_MAX) -> float:
    """Where a one-colour top ends, in torso lengths below the waist line: a
    jacket's hem is a line of strong up-down shading change across her front,
    well above what the cloth's folds make; without one, the waist line (0).
    A jacket's hem is looked for down to HEM_MAX; without one, a longer hem
    below that, down to `hem_max`. The shading profile is measured once."""
    L = cv2.GaussianBlur(lab[..., 0], (3, 3), 0).astype(np.float32)
    edge = np.abs(cv2.Sobel(L, cv2.CV_32F, 0, 1, ksize=3))
    front = cv2.erode(g.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0     # not her outline
    cols = np.zeros_like(front)
    cols[:, max(0, xs[0]):max(0, xs[1] + 1)] = True
    front &= cols
    steps = np.arange(-0.2, max(hem_max, HEM_MAX) + 0.1, 0.02)
    prof = np.full(len(steps), np.nan)
    for i, b in enumerate(steps):
        band = front & (below >= b - 0.02) & (below < b + 0.02)
        if band.sum() >= 10:
            prof[i] = edge[band].mean()

    def search(start: float, stop: float) -> float:
        # (the outfit's usual shading: the median over the rows down to 0.1
        # past `stop`, so the long search's baseline takes in her legs too)
        seen = prof[:len(np.arange(-0.2, stop + 0.1, 0.02))]
        look = (steps[:len(seen)] >= start) & (steps[:len(seen)] <= stop) & ~np.isnan(seen)
        if not look.any():
            return 0.0
        i = int(np.flatnonzero(look)[np.argmax(seen[look])])
        if seen[i] < max(HEM_EDGE * np.nanmedian(seen), HEM_MIN_EDGE):
            return 0.0
        # a hem runs right across her; a leg's or an arm's edge crosses only part of it
        band = front & (below >= steps[i] - 0.03) & (below < steps[i] + 0.03)
        strong = np.where(band, edge, 0.0).max(axis=0) >= HEM_MIN_EDGE
        present = band.any(axis=0)
        # ... and the trousers go on below it (a shorts' hem over a bare thigh is not a jacket's)
        under = front & (below >= steps[i] + 0.08) & (below < steps[i] + 0.14)
        goes_on = under.any(axis=0)[present].mean()
        if strong[present].mean() < HEM_ACROSS or goes_on < HEM_ACROSS:
            return 0.0
        if start >= HEM_MAX:
            # below a jacket's length, a hem is a coat's or a dress's over her
            # legs: wider than they are (a crease across trousers is not)
            rows_hem = (g & (below >= steps[i] - 0.1) & (below < steps[i] - 0.02)).any(1)
            rows_legs = (g & (below >= steps[i] + 0.04) & (below < steps[i] + 0.12)).any(1)
            if _cover(g & (below < steps[i]), rows_hem) < FLARE * _cover(g & (below > steps[i]), rows_legs):
                return 0.0
        return float(steps[i])

    level = search(0.05, HEM_MAX)
    if level == 0.0 and hem_max > HEM_MAX:
        level = search(HEM_MAX, hem_max)
    return level


def _same_cloth(lab: np.ndarray, a: np.ndarray, b: np.ndarray) -> bool:
    """Regions `a` and `b` (bool masks) look like one cloth: near in median
    colour (in hue too, for a coloured cloth), or one of them in shade,
    or, for a print whose median moves with the pattern, made of the same
    colours (Bhattacharyya overlap of their coarse Lab histograms)."""
    ra, rb = _lab_ref(lab[a]), _lab_ref(lab[b])
    d = ra - rb
    # one cloth lit differently on her chest and her thighs changes in
    # lightness, and its a/b shrink or grow together; a navy top over charcoal
    # shorts is as near in Lab, but one has a hue and the other none
    chroma = max(float(np.hypot(*ra[1:])), float(np.hypot(*rb[1:])), HUE_FLOOR)
    if float(np.linalg.norm(d)) < SAME_COLOUR_DE and float(np.linalg.norm(d[1:])) < SAME_HUE * chroma:
        return True
    if _in_shade(ra, rb):
        return True
    def overlap(channels, bins, ranges):
        ha = cv2.calcHist([lab], channels, a.astype(np.uint8), bins, ranges)
        hb = cv2.calcHist([lab], channels, b.astype(np.uint8), bins, ranges)
        return float(np.sum(np.sqrt(ha / max(1.0, ha.sum()) * hb / max(1.0, hb.sum()))))
    # coarse bins see a print's shared colours; their 32-wide chroma bins would
    # also merge two near plain colours (a white blouse, a beige skirt), which
    # the finer chroma check keeps apart
    return (overlap([0, 1, 2], CLOTH_BINS, HIST_RANGES) >= SAME_CLOTH_OVERLAP
            and overlap([1, 2], [32, 32], [0, 256, 0, 256]) >= SAME_CLOTH_OVERLAP)


def _in_shade(ra: np.ndarray, rb: np.ndarray) -> bool:
    """Two median colours (CIE Lab) could be one cloth, one half in shade:
    shade scales lightness and chroma together, so the darker one brought up
    to the lighter one's lightness has its a/b. Shade darkens by a lightness
    ratio of SHADE_RATIO at most: black beside charcoal, or dark jeans beside
    a chambray shirt, stay two colours."""
    dark, light = (ra, rb) if ra[0] < rb[0] else (rb, ra)
    k = float(light[0] / max(dark[0], 1e-3))
    if k * SHADE_RATIO > 1.0:
        return False
    d = light[1:] - dark[1:] * k
    chroma = max(float(np.hypot(*light[1:])), HUE_FLOOR)
    return float(np.linalg.norm(d)) < min(SAME_COLOUR_DE, SAME_HUE * chroma)


def _covers_knees(g: np.ndarray, pose: np.ndarray) -> bool:
    """The garment reaches down past where pose puts her knees (seen or
    guessed), inside the picture: a long skirt or dress over them."""
    knee_y = float((pose[25, 1] + pose[26, 1]) / 2)
    return 0 <= knee_y < g.shape[0] and bool(g[int(knee_y):].any())


def _span(g: np.ndarray, y: float, half: int = 2) -> float:
    """Width of the garment across rows y-half..y+half (its extent, gaps included)."""
    y0, y1 = max(0, int(y) - half), min(g.shape[0], int(y) + half + 1)
    cols = np.flatnonzero(g[y0:y1].any(0)) if y1 > y0 else np.array([])
    return float(cols[-1] - cols[0] + 1) if cols.size else 0.0


LEGWEAR_COVER = 0.6   # share of her shins' middle the cut must cover for tights or boots (not bits of bare skin)


def _shins(g: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """The garment on her shins (the middle of knee to ankle, both legs), or
    nothing unless it covers LEGWEAR_COVER of them."""
    m = np.zeros(g.shape, np.uint8)
    sw = float(np.linalg.norm(pose[11, :2] - pose[12, :2]))
    for knee, ankle in ((25, 27), (26, 28)):
        if visible(pose, knee, 0.3) and visible(pose, ankle, 0.3):
            a, b = pose[knee, :2], pose[ankle, :2]
            p0, p1 = a + 0.3 * (b - a), a + 0.8 * (b - a)
            cv2.line(m, tuple(np.round(p0).astype(int)), tuple(np.round(p1).astype(int)), 1,
                     max(2, round(0.08 * sw)))
    on = (m > 0) & g
    return on if on.sum() >= LEGWEAR_COVER * max(1, int(m.sum())) else np.zeros_like(on)


FLARE = 1.25   # a skirt or a coat over her legs covers this many times the width her legs do below it


def _cover(g: np.ndarray, rows: np.ndarray) -> float:
    """Garment pixels per row over `rows` (bool, one per image row)."""
    n = int(rows.sum())
    return float(g[rows].sum() / n) if n else 0.0


def _flares_over_shins(g: np.ndarray, pose: np.ndarray) -> bool:
    """Her thighs' garment is wider than her shins' (FLARE): a skirt or a coat
    over tights or boots, not trousers tucked into boots."""
    ys = np.arange(g.shape[0])
    hip, knee, ankle = ((pose[a, 1] + pose[b, 1]) / 2 for a, b in ((23, 24), (25, 26), (27, 28)))
    thigh, shin = hip + 0.6 * (knee - hip), knee + 0.5 * (ankle - knee)
    band = max(2.0, 0.05 * float(ankle - hip))
    return _cover(g, np.abs(ys - thigh) <= band) >= FLARE * _cover(g, np.abs(ys - shin) <= band)


def _legwear(lab: np.ndarray, g: np.ndarray, pose: np.ndarray, cloth: np.ndarray) -> np.ndarray | None:
    """Her shins in another colour than `cloth` (a dress's sample): tights or
    boots under it, which are not the dress. None when her shins are bare, out
    of view or of the dress's own cloth."""
    shins = _shins(g, pose)
    if shins.sum() < 15 or cloth.sum() < 15 or _same_cloth(lab, cloth, shins):
        return None
    return shins


ONE_LEG = 0.15      # a trouser leg alone at her ankles (the other crossed behind it mid-stride) spans this share of her hips
ANKLE_SEEN = 0.3    # ankle visibility enough to measure there (a crossed ankle is half hidden)


def _trouser_legs(g: np.ndarray, pose: np.ndarray, mid_h: np.ndarray) -> bool:
    """One colour from the waist down with the legs together looks like a dress
    between the knees. Trousers go on down to her shoes as two legs no wider
    together than her hips would suggest (or one, the other crossed behind
    it mid-stride); a dress ends above the ankles (her
    shins show) or, long, stays as wide as at her hips. (Legs of another
    colour than her thighs are tights or boots under a skirt: `_legwear`.)"""
    if not (visible(pose, 27, ANKLE_SEEN) and visible(pose, 28, ANKLE_SEEN)):
        return False
    ankle_y = float((pose[27, 1] + pose[28, 1]) / 2)
    knee_y = float((pose[25, 1] + pose[26, 1]) / 2)
    low = ankle_y - 0.15 * (ankle_y - knee_y)
    hips = _span(g, mid_h[1])
    if hips < 4 or low >= g.shape[0]:
        return False
    return _span(g, low) >= ONE_LEG * hips and _span(g, low) < 0.8 * hips


ACROSS_REACH = 0.3    # a forearm across her reaches this share of its length past the wrist (the hand)
ACROSS_THICK = 0.3    # ... and is this thick, as a share of her shoulders' width


def _forearms_across(pose: np.ndarray, shape: tuple[int, int], sw: float) -> np.ndarray:
    """Her forearms where they lie across her torso, flatter than 45 degrees
    with their middle between her shoulders and hips (crossed arms, a hand on
    her belly): bool mask, as thick as a forearm."""
    m = np.zeros(shape, np.uint8)
    body = pose[[11, 12, 23, 24], 0]
    for elbow, wrist in ((13, 15), (14, 16)):
        if not (visible(pose, elbow, 0.3) and visible(pose, wrist, 0.3)):
            continue
        a, b = pose[elbow, :2], pose[wrist, :2]
        if abs(b[1] - a[1]) <= abs(b[0] - a[0]) and body.min() <= (a[0] + b[0]) / 2 <= body.max():
            end = b + ACROSS_REACH * (b - a)
            cv2.line(m, tuple(np.round(a).astype(int)), tuple(np.round(end).astype(int)), 1,
                     max(2, round(ACROSS_THICK * sw)))
    return m > 0


def _pieces_apart(g: np.ndarray, up_seed: np.ndarray, lo_seed: np.ndarray) -> np.ndarray | None:
    """The garment pieces holding the top's seeds, when none of them also holds
    the bottom's: she wears two garments with nothing of either between."""
    if up_seed.sum() < 15 or lo_seed.sum() < 15:
        return None
    _, labels = cv2.connectedComponents(g.astype(np.uint8), connectivity=8)
    up, lo = set(np.unique(labels[up_seed])) - {0}, set(np.unique(labels[lo_seed])) - {0}
    if not up or up & lo:
        return None
    return np.isin(labels, list(up))


def _gap_strip(shape: tuple[int, int], mid_h: np.ndarray, knees: list[np.ndarray]) -> np.ndarray:
    """A strip down the middle, from below the crotch to between the knees
    (the knee points sit mid-leg, so only the middle third of the span between
    them): bool mask of `shape`."""
    k1, k2 = knees
    kmid = (k1 + k2) / 2
    top = mid_h + 0.35 * (kmid - mid_h)
    half = max(1.0, 0.15 * float(np.linalg.norm(k1 - k2)))
    across = (k2 - k1) / max(1e-3, float(np.linalg.norm(k2 - k1))) * half
    strip = np.zeros(shape, np.uint8)
    pts = np.array([top - across, top + across, kmid + across, kmid - across])
    cv2.fillConvexPoly(strip, np.round(pts).astype(np.int32), 1)
    return strip > 0


def _gap_fill(g: np.ndarray, mid_h: np.ndarray, knees: list[np.ndarray]) -> float:
    """Garment share of the gap's strip: a skirt fills it, trouser legs leave it open."""
    strip = _gap_strip(g.shape, mid_h, knees)
    n = int(strip.sum())
    return float((g & strip).sum() / n) if n >= 10 else 0.0


MINI_ROWS = 0.15   # share of the gap's strip a short skirt must fill from its top, before it ends


def _short_skirt(g: np.ndarray, mid_h: np.ndarray, knees: list[np.ndarray]) -> bool:
    """A skirt ending above her knees: the gap's strip is filled from its top,
    row after row, for at least MINI_ROWS of its length, then empty down to
    the knees (bare legs, or the gap between them). Trouser legs or shorts
    leave its top open."""
    strip = _gap_strip(g.shape, mid_h, knees)
    ys = np.flatnonzero(strip.any(1))
    if len(ys) < 7:
        return False
    per_row = (g & strip)[ys].sum(1) / strip[ys].sum(1)
    short = per_row < DRESS_GAP_FILL
    run = int(np.argmax(short)) if short.any() else len(ys)
    return run >= MINI_ROWS * len(ys) and bool((per_row[run:] < GAP_BARE).all())


LEGS_BELOW = 0.5   # below the waist line by this much (torso lengths) is her legs


def _grabcut_split(img: np.ndarray, g: np.ndarray, up_seed: np.ndarray, lo_seed: np.ndarray,
                   below: np.ndarray) -> np.ndarray:
    """GrabCut inside the garment's box: upper (foreground) against lower."""
    ys, xs = np.nonzero(g)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    pad = 4
    y0, x0 = max(0, y0 - pad), max(0, x0 - pad)
    y1, x1 = min(g.shape[0], y1 + pad), min(g.shape[1], x1 + pad)
    gg, bb = g[y0:y1, x0:x1], below[y0:y1, x0:x1]
    gc = np.full(gg.shape, cv2.GC_BGD, np.uint8)
    gc[gg & (bb < 0)] = cv2.GC_PR_FGD
    gc[gg & (bb >= 0)] = cv2.GC_PR_BGD
    gc[lo_seed[y0:y1, x0:x1]] = cv2.GC_BGD
    gc[up_seed[y0:y1, x0:x1]] = cv2.GC_FGD
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    try:
        cv2.setRNGSeed(GRABCUT_SEED)
        cv2.grabCut(np.ascontiguousarray(img[y0:y1, x0:x1]), gc, None, bgd, fgd, 2, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        return g & (below < 0)
    out = np.zeros_like(g)
    out[y0:y1, x0:x1] = (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
    # keep the pieces joined to the top (a speck on the trousers that shares its colour is not it)
    # ... and of those apart from it, none lying on her legs: tights or boots
    # of the top's colour below a skirt are not the top
    return keep_big_parts(out.astype(np.uint8), up_seed, below > LEGS_BELOW) > 0


def _like(lab: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pixels coloured more like region `a` than region `b`."""
    ha = cv2.calcHist([lab], [0, 1, 2], a.astype(np.uint8), HIST_BINS, HIST_RANGES) / max(1, int(a.sum()))
    hb = cv2.calcHist([lab], [0, 1, 2], b.astype(np.uint8), HIST_BINS, HIST_RANGES) / max(1, int(b.sum()))
    idx = bin_index(lab)
    return ha.ravel()[idx] > 1.5 * hb.ravel()[idx]
