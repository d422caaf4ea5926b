"""Garment parts (issue 13): upper, lower, dress, full, none.

The split's rules on drawn scenes with known answers, the photo path and the
kiosk pipeline on the shared photos with the real models, and `--part` on both
CLI commands. The IoU on unseen full-body photos is measured by
`python -m tests.garment_parts` (those photos are not committed)."""

import json
import subprocess
import sys

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from tests.test_garment_iou import TRUTH, iou_of, truth_mask
from vision import garment
from vision.body import body_layout, keep_big_parts, mark_shoes
from vision.garment import WORK_PIXELS, GarmentModel, _fill_small_holes, _her_pieces, _skin_mask
from vision.garment_parts import PARTS, WAIST_FRAC, PartError, _midriff_gap, split_parts
from vision.hair import sleeves_like, upright
from vision.person import person_extent, with_body
from vision.photo_segmenter import PhotoSegmenter, part_of_outline, refine_outline

# --- the split's rules, on a drawn figure --------------------------------------------------

W, H = 200, 400


def _figure(top_bgr, bottom_bgr, skirt: bool):
    """A standing figure: shoulders at y 80, hips at 200, knees at 290, hem of the top at 185."""
    img = np.full((H, W, 3), 235, np.uint8)
    seg = np.zeros((H, W), np.uint8)
    cv2.rectangle(img, (60, 70), (140, 185), top_bgr, -1)
    cv2.rectangle(seg, (60, 70), (140, 185), 1, -1)
    if skirt:
        pts = np.array([[60, 185], [140, 185], [160, 320], [40, 320]], np.int32)
        cv2.fillConvexPoly(img, pts, bottom_bgr)
        cv2.fillConvexPoly(seg, pts, 1)
    else:
        for x0 in (62, 104):   # two trouser legs with a gap between them
            cv2.rectangle(img, (x0, 185), (x0 + 34, 380), bottom_bgr, -1)
            cv2.rectangle(seg, (x0, 185), (x0 + 34, 380), 1, -1)
        cv2.rectangle(img, (62, 185), (138, 215), bottom_bgr, -1)
        cv2.rectangle(seg, (62, 185), (138, 215), 1, -1)
    pose = np.zeros((33, 3), np.float32)
    pose[:, 2] = 0.0
    marks = {0: (100, 40), 2: (94, 34), 5: (106, 34), 7: (88, 38), 8: (112, 38), 9: (96, 50), 10: (104, 50),
             11: (135, 80), 12: (65, 80), 23: (122, 200), 24: (78, 200), 25: (122, 290), 26: (78, 290),
             27: (122, 370), 28: (78, 370)}
    for i, (x, y) in marks.items():
        pose[i] = (x, y, 0.99)
    lab = cv2.cvtColor(img, cv2.COLOR_BGR2Lab)
    return img, lab, seg, pose


def _draw_face(img, person, colour, neck=False):
    """The drawn figure's face (and, with `neck`, her neck) in `colour`, in the image and the person mask."""
    cv2.ellipse(img, (100, 40), (22, 28), 0, 0, 360, colour, -1)
    cv2.ellipse(person, (100, 40), (22, 28), 0, 0, 360, 1.0, -1)
    if neck:
        cv2.rectangle(img, (90, 60), (110, 72), colour, -1)
        cv2.rectangle(person, (90, 60), (110, 72), 1.0, -1)


def _draw_bare_arms(img, person, pose, colour):
    """Two bare arms hanging from the drawn figure's shoulders, in `colour`, with pose's elbows on them."""
    for a, b in (((140, 76), (160, 190)), ((60, 76), (40, 190))):
        cv2.line(img, a, b, colour, 14)
        cv2.line(person, a, b, 1.0, 14)
    pose[[13, 14]] = [[150, 135, .99], [50, 135, .99]]


def _at_figure_size(mask):
    """A model's work-size mask as bool at the drawn figure's size."""
    return cv2.resize(mask, (W, H), interpolation=cv2.INTER_NEAREST) > 0


def _split_drawn(img, seg, pose):
    return split_parts(img, cv2.cvtColor(img, cv2.COLOR_BGR2Lab), seg, pose, body_layout(pose, img.shape[1::-1]))


def _split(top, bottom, skirt):
    img, _, seg, pose = _figure(top, bottom, skirt)
    return _split_drawn(img, seg, pose), seg


def test_a_top_and_trousers_of_different_colours_split_at_the_hem():
    parts, seg = _split((40, 40, 200), (120, 60, 20), skirt=False)
    up, lo = parts.masks["upper"] > 0, parts.masks["lower"] > 0
    assert parts.kind == "separates"
    assert not (up & lo).any() and ((up | lo) == (seg > 0)).all()
    assert up[70:180].sum() > 0.95 * seg[70:180].sum()       # the top
    assert not up[195:].any()                                   # nothing of the trousers
    assert lo[195:].sum() == seg[195:].sum() and not lo[:180].any()
    assert (parts.masks["dress"] > 0).sum() == up.sum()          # no dress continues the top


def test_one_colour_with_a_skirt_is_a_dress_and_upper_takes_all_of_it():
    parts, seg = _split((40, 40, 200), (40, 40, 200), skirt=True)
    assert parts.kind == "dress"
    assert ((parts.masks["upper"] > 0) == (seg > 0)).all()
    assert ((parts.masks["dress"] > 0) == (seg > 0)).all()
    assert not parts.masks["lower"].any()       # no trousers or skirt of hers to recolour


def test_one_colour_trousers_split_at_the_waist():
    parts, seg = _split((30, 30, 30), (30, 30, 30), skirt=False)
    up, lo = parts.masks["upper"] > 0, parts.masks["lower"] > 0
    assert parts.kind == "one_colour"
    assert up[80:170].sum() == seg[80:170].sum() and not up[200:].any()
    assert lo[200:].sum() == seg[200:].sum() and not lo[:170].any()


def test_a_navy_top_over_charcoal_shorts_is_two_garments():
    """As near in Lab as one cloth lit differently (distance 10.5), but the
    distance is all hue: a navy tank top over charcoal shorts, not one colour."""
    parts, seg = _split((70, 55, 50), (62, 62, 62), skirt=False)
    up, lo = parts.masks["upper"] > 0, parts.masks["lower"] > 0
    assert parts.kind == "separates"
    assert up[70:180].sum() > 0.95 * seg[70:180].sum() and not up[195:].any()
    assert lo[195:].sum() == seg[195:].sum()


@pytest.mark.parametrize("top,shade", [((200, 60, 30), 0.88), ((0, 200, 255), 0.92), ((40, 40, 200), 0.88)])
def test_a_saturated_dress_with_its_skirt_in_shade_is_one_cloth(top, shade):
    """Shade takes lightness and chroma together (a/b shrink in step): a blue,
    yellow or red dress darker below is still one colour."""
    bottom = tuple(int(v * shade) for v in top)
    parts, seg = _split(top, bottom, skirt=True)
    assert parts.kind == "dress"


def test_a_dress_with_its_skirt_in_deep_shade_is_one_cloth():
    """A purple dress on a stool, her lap lit and her bodice in shade (Lab
    41/20/-16 against 28.6/17/-9, distance 14.7): lightness and chroma fall
    together, so it is one cloth, not a top and a skirt."""
    parts, seg = _split((81, 58, 86), (122, 85, 117), skirt=True)
    assert parts.kind == "dress"
    assert ((parts.masks["upper"] > 0) == (seg > 0)).all()


@pytest.mark.parametrize("top,bottom", [((20, 20, 20), (60, 60, 60)),          # black over charcoal
                                        ((200, 170, 140), (90, 60, 40)),      # chambray over dark jeans
                                        ((40, 40, 200), (150, 150, 240))])    # red over pink
def test_colours_further_apart_than_shade_makes_stay_two_garments(top, bottom):
    parts, seg = _split(top, bottom, skirt=True)
    assert parts.kind == "separates"


def test_without_hips_in_view_all_of_it_is_the_top():
    img, lab, seg, pose = _figure((40, 40, 200), (120, 60, 20), skirt=False)
    pose[23:, 2] = 0.0
    parts = split_parts(img, lab, seg, pose, body_layout(pose, (W, H)))
    assert parts.kind == "top_only"
    assert ((parts.masks["upper"] > 0) == (seg > 0)).all() and not parts.masks["lower"].any()


def _side_bend(degrees: float):
    """The drawn figure, widened by 50 px either side, her torso and head
    leaning `degrees` to her side about her hips while her legs stand straight."""
    img, _, seg, pose = _figure((40, 40, 200), (120, 60, 20), skirt=False)
    img[:185], seg[:185] = 235, 0                     # the upright top taken off
    img = cv2.copyMakeBorder(img, 0, 0, 50, 50, cv2.BORDER_CONSTANT, value=(235, 235, 235))
    seg = cv2.copyMakeBorder(seg, 0, 0, 50, 50, cv2.BORDER_CONSTANT, value=0)
    lean = np.tan(np.radians(degrees))

    def at(x, y):
        return x + 50 - lean * max(0, 200 - y), y

    top = np.round([at(60, 70), at(140, 70), at(140, 185), at(60, 185)]).astype(np.int32)
    cv2.fillConvexPoly(img, top, (40, 40, 200))
    cv2.fillConvexPoly(seg, top, 1)
    for i in range(33):
        if pose[i, 2] > 0:
            pose[i, :2] = at(*pose[i, :2])
    return img, seg, pose


def test_a_side_bend_with_her_knees_below_her_hips_still_has_trousers():
    """Leaning 30 degrees to her side with her knees seen well below her hips,
    the hips are real: top and trousers are found. Leaning as far with no
    knees in view, pose is guessing hips, and all of it is the top."""
    img, seg, pose = _side_bend(30)
    parts = _split_drawn(img, seg, pose)
    up, lo = parts.masks["upper"] > 0, parts.masks["lower"] > 0
    assert parts.kind == "separates"
    assert up[70:180].sum() > 0.95 * seg[70:180].sum() and not up[195:].any()
    assert lo[195:].sum() == seg[195:].sum()
    pose[25:, 2] = 0.0
    assert _split_drawn(img, seg, pose).kind == "top_only"


def test_bent_far_over_all_of_it_is_the_top_though_her_knees_are_seen():
    img, seg, pose = _side_bend(50)
    assert _split_drawn(img, seg, pose).kind == "top_only"


# --- real models on the shared photos --------------------------------------------------------

CASES = sorted(p.stem for p in TRUTH.glob("*.json"))


@pytest.mark.parametrize("name", CASES)
def test_on_a_blouse_only_photo_upper_is_the_whole_garment_and_lower_is_nothing(name, media, photo_segmenter):
    """The shared photos show her from the waist up: the top is all there is."""
    spec = json.loads((TRUTH / f"{name}.json").read_text())
    img = cv2.imread(str(media / spec["image"]))
    want = truth_mask(media, spec, img.shape[:2])
    upper = photo_segmenter.garment(img, part="upper") >= 0.5
    assert iou_of(upper, want) >= 0.85, f"{name}: upper IoU {iou_of(upper, want):.3f}"
    lower = photo_segmenter.garment(img, part="lower") >= 0.5
    assert lower.mean() < 0.02, f"{name}: lower covers {lower.mean():.1%} of a waist-up photo"
    assert not (photo_segmenter.garment(img, part="none") > 0).any()


def test_a_photo_is_cut_in_each_view_and_a_pixel_is_garment_where_most_views_say_so(monkeypatch):
    """Each view's matte is brought back onto the photo (unmirrored, full
    size) before the vote; what two views alone say is outvoted. Two views
    see the photo in other light: bluer, and redder (mirrored)."""
    photo = np.zeros((120, 90, 3), np.uint8)
    photo[20:100, 10:40] = 200                      # "her top", grey, on the photo's left
    seen = []

    def one_view(self, bgr, feather_px, parts, first=None):
        mirrored = not bgr[50, 20].any()           # the top is on the right
        seen.append((bgr.shape[:2], mirrored, int(bgr[..., 0].max()), int(bgr[..., 2].max())))
        m = (bgr.max(axis=2) > 128).astype(np.float32)   # the other views find the top where they see it
        if len(seen) in (1, 4):
            m[:] = 0.0                               # two views miss it (a knife-edged cut)
            m[:, -20:] = 1.0                         # and take a strip at the right instead
        return {p: m for p in parts}

    monkeypatch.setattr(PhotoSegmenter, "_one_view", one_view)
    seg = PhotoSegmenter.__new__(PhotoSegmenter)
    seg.last_model = None
    seg.pose = SimpleNamespace(landmarks_and_body=lambda img: (None, None))    # no one upside down
    got = seg.garments(photo, parts=("upper", "full"))
    # (size, mirrored, blue, red): as it is, mirrored, at 0.8, bluer, redder and mirrored
    assert [v[:2] for v in seen] == [((120, 90), False), ((120, 90), True), ((96, 72), False),
                                     ((120, 90), False), ((120, 90), True)]
    assert [v[2:] for v in seen[:2]] == [(200, 200), (200, 200)]
    assert seen[3][2] > 200 > seen[3][3], "the fourth view is not bluer"
    assert seen[4][2] < 200 < seen[4][3], "the fifth view is not redder"
    want = photo[..., 0] > 128
    for part in ("upper", "full"):
        assert got[part].shape == (120, 90)
        assert iou_of(got[part] >= 0.5, want) > 0.95, part
        assert not (got[part][:, -20:] >= 0.5).any(), "two views' strip won the vote"


def test_all_parts_at_once_are_the_parts_one_by_one(media, photo_segmenter):
    img = cv2.imread(str(media / "images" / "portrait_suit.jpg"))
    both = photo_segmenter.garments(img, parts=("upper", "full"))
    assert np.array_equal(both["upper"], photo_segmenter.garment(img, part="upper"))
    assert np.array_equal(both["full"], photo_segmenter.garment(img, part="full"))


def test_an_unknown_part_is_refused(photo_segmenter, media):
    img = cv2.imread(str(media / "images" / "pointing_up.jpg"))
    with pytest.raises(PartError, match="shoes"):
        photo_segmenter.garment(img, part="shoes")


def test_the_pipeline_recolours_the_part_it_is_told(media):
    from mirror.core import config
    from vision.capture import Frame
    from vision.pipeline import VisionPipeline, render_frame
    img = cv2.imread(str(media / "images" / "pointing_up.jpg"))
    cfg = config.load(None, env={})
    pipe = VisionPipeline(cfg.vision, cfg.depth, parallel=False, background_refresh=False)
    try:
        full = pipe.process(Frame(img, 0.0, 0))
        assert full.part == "full" and full.matte.max() > 0.5
        pipe.set_part("upper")
        upper = pipe.process(Frame(img, 0.1, 1))
        assert upper.part == "upper"
        # a waist-up photo: the top is all of her clothing
        assert iou_of(upper.matte > 0.5, full.matte > 0.5) > 0.9
        pipe.set_part("none")
        none = pipe.process(Frame(img, 0.2, 2))
        assert none.part == "none" and not none.matte.any()
        assert render_frame(none, (0, 0, 255)) is img
        assert render_frame(full, (0, 0, 255), part="none") is img
        with pytest.raises(PartError):
            pipe.set_part("hat")
        assert pipe.part == "none"
    finally:
        pipe.close()
    assert set(PARTS) == {"upper", "lower", "dress", "full", "none"}


# --- the command line --------------------------------------------------------------------------

def _mirror(*args):
    return subprocess.run([sys.executable, "-m", "mirror", *args], capture_output=True, text=True)


def test_segment_and_recolor_take_a_part(media, tmp_path):
    image = media / "images" / "pointing_up.jpg"
    img = cv2.imread(str(image))
    r = _mirror("segment", str(image), "--out", str(tmp_path / "upper.png"), "--part", "upper")
    assert r.returncode == 0, r.stderr
    upper = cv2.imread(str(tmp_path / "upper.png"), cv2.IMREAD_UNCHANGED)
    assert upper.shape == img.shape[:2] and upper.dtype == np.uint8 and (upper >= 128).mean() > 0.1
    r = _mirror("recolor", str(image), "--color", "#c02020", "--out", str(tmp_path / "lower.png"), "--part", "lower")
    assert r.returncode == 0, r.stderr
    out = cv2.imread(str(tmp_path / "lower.png"))
    # a waist-up photo has no lower garment: recolouring it changes (almost) nothing
    changed = np.abs(out.astype(int) - img.astype(int)).max(2) > 20
    assert changed.mean() < 0.01


@pytest.mark.parametrize("command", [["segment"], ["recolor", "--color", "#ff0000"]])
def test_a_bad_part_exits_2_with_one_line(command, tmp_path):
    r = _mirror(*command, "photo.jpg", "--out", str(tmp_path / "x.png"), "--part", "shoes")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--part" in lines[0] and "upper, lower or full" in lines[0], r.stderr


def test_help_explains_the_parts():
    for command in ("segment", "recolor"):
        r = _mirror(command, "--help")
        text = " ".join(r.stdout.split())
        assert r.returncode == 0 and "trousers or a skirt" in text and "a dress as a whole" in text


def test_a_crop_top_over_a_skirt_of_its_colour_is_two_garments():
    # bare skin all the way across between them: no dress, whatever the colours
    img, _, seg, pose = _figure((40, 40, 200), (40, 40, 200), skirt=True)
    img[150:185, 60:141] = (150, 170, 220)                 # her midriff
    seg[150:185, 60:141] = 0
    parts = _split_drawn(img, seg, pose)
    up, lo = parts.masks["upper"] > 0, parts.masks["lower"] > 0
    assert parts.kind == "separates"
    assert up[70:150].sum() == seg[70:150].sum() and not up[185:].any()
    assert lo[185:].sum() == seg[185:].sum() and not lo[:150].any()


def _crossed_arms(img, seg, pose, y0=120, y1=140):
    """Bare forearms crossed flat over the drawn figure's top, rows y0-y1, with
    pose's elbows and wrists on them: they cut the top in two."""
    img[y0:y1, 50:151] = (150, 170, 220)
    seg[y0:y1, 50:151] = 0
    ym = (y0 + y1) // 2
    pose[[13, 14, 15, 16]] = [[150, ym, .99], [50, ym, .99], [72, ym - 2, .99], [128, ym + 2, .99]]


def test_crossed_arms_over_a_t_shirt_do_not_make_it_a_crop_top():
    # a black T-shirt over grey trousers, her bare forearms crossed over her middle:
    # the T-shirt under her arms is still the top, not part of her trousers
    img, _, seg, pose = _figure((30, 30, 30), (140, 140, 140), skirt=False)
    _crossed_arms(img, seg, pose)
    parts = _split_drawn(img, seg, pose)
    up, lo = _at_figure_size(parts.masks["upper"]), _at_figure_size(parts.masks["lower"])
    assert up[145:180, 65:135].mean() > 0.9 and not lo[145:180, 65:135].any()
    assert up[70:118].sum() >= 0.95 * seg[70:118].sum() and not up[220:].any()


def test_a_crop_top_with_her_arms_hanging_beside_her_is_still_two_garments():
    img, _, seg, pose = _figure((40, 40, 200), (40, 40, 200), skirt=True)
    img[150:185, 60:141] = (150, 170, 220)                 # her midriff
    seg[150:185, 60:141] = 0
    _draw_bare_arms(img, np.zeros((H, W), np.float32), pose, (150, 170, 220))
    pose[[15, 16]] = [[160, 190, .99], [40, 190, .99]]     # her wrists, below her elbows
    parts = _split_drawn(img, seg, pose)
    up = parts.masks["upper"] > 0
    assert parts.kind == "separates" and up[70:150].sum() == seg[70:150].sum() and not up[185:].any()


def _one_colour_legs_joined(ankles: tuple[int, int], hidden_ankle: float = 0.99):
    """A one-colour figure whose legs are drawn as one piece from the hips
    (x 60-140) narrowing to x `ankles` at y 385; pose's right ankle seen at
    `hidden_ankle`. It must read as trousers: one colour split at the waist."""
    img, _, seg, pose = _figure((30, 30, 30), (30, 30, 30), skirt=True)
    img[185:, :] = 235
    seg[185:, :] = 0
    legs = np.array([[60, 185], [140, 185], [ankles[1], 385], [ankles[0], 385]], np.int32)
    cv2.fillConvexPoly(img, legs, (30, 30, 30))
    cv2.fillConvexPoly(seg, legs, 1)
    pose[28, 2] = hidden_ankle
    parts = _split_drawn(img, seg, pose)
    assert parts.kind == "one_colour"
    assert not (parts.masks["upper"] > 0)[220:].any() and (parts.masks["lower"] > 0)[220:].sum() == seg[220:].sum()


def test_one_colour_trousers_with_the_legs_together_are_not_a_dress():
    # the gap between the knees is filled, as by a skirt; but the legs go on
    # down to the ankles, narrower than her hips: trousers
    _one_colour_legs_joined((78, 122))


def test_one_colour_trousers_with_the_legs_crossed_mid_stride_are_not_a_dress():
    # one leg behind the other: at her ankles the cut is one trouser leg wide
    # (about a fifth of her hips), and the ankle behind is half hidden to pose
    _one_colour_legs_joined((96, 104), hidden_ankle=0.4)


def _tights(img, seg, colour, top=320):
    """Her legs from y `top` (below a skirt) down to her shoes, in `colour`."""
    for x0 in (74, 104):
        cv2.rectangle(img, (x0, top), (x0 + 22, 385), colour, -1)
        cv2.rectangle(seg, (x0, top), (x0 + 22, 385), 1, -1)


def test_a_dress_over_black_tights_is_the_dress_alone():
    # a red dress to below the knees, black tights down to the shoes: her legs
    # go on as two legs, but not in the dress's colour, so it is no trouser suit
    img, _, seg, pose = _figure((40, 40, 200), (40, 40, 200), skirt=True)
    _tights(img, seg, (25, 25, 25))
    parts = _split_drawn(img, seg, pose)
    up = parts.masks["upper"] > 0
    assert parts.kind == "dress"
    assert up[70:318].sum() > 0.98 * seg[70:318].sum()          # all of the dress
    assert not up[322:].any() and not parts.masks["lower"].any()  # nothing of the tights
    assert ((parts.masks["dress"] > 0) == up).all()


@pytest.mark.parametrize("legs", [((72, 98), (102, 128)),      # trousers under a long coat
                                  ((78, 96), (104, 122))])     # black tights under a black dress
def test_a_long_coat_or_a_dress_over_legs_of_its_colour_ends_at_its_hem(legs):
    # it hangs over the gap between her knees to y 305, its hem a line of
    # shadow; her legs go on below it in the same black
    img = np.full((H, W, 3), 235, np.uint8)
    seg = np.zeros((H, W), np.uint8)
    *_, pose = _figure((30, 30, 30), (30, 30, 30), skirt=False)
    for x0, x1 in legs:
        cv2.rectangle(img, (x0, 185), (x1, 380), (30, 30, 30), -1)
        cv2.rectangle(seg, (x0, 185), (x1, 380), 1, -1)
    coat = np.array([[58, 70], [142, 70], [146, 305], [54, 305]], np.int32)
    cv2.fillConvexPoly(img, coat, (30, 30, 30))
    cv2.fillConvexPoly(seg, coat, 1)
    img[306:309, 52:149] = (75, 75, 75)
    seg[306:309, 52:149] = 1
    parts = _split_drawn(img, seg, pose)
    up, lo = parts.masks["upper"] > 0, parts.masks["lower"] > 0
    assert parts.kind == "one_colour"
    assert up[70:300].sum() == seg[70:300].sum()               # all of it, to its hem
    assert not up[315:].any() and lo[315:].sum() == seg[315:].sum()


@pytest.mark.parametrize("below_knee", ["tan boots", "a crease"])
def test_one_colour_trousers_with_the_legs_together_end_at_the_waist_whatever_is_below_the_knees(below_knee):
    # boots of another colour are no tights under a skirt, and a line across
    # the knees no coat's hem: above them the trousers are no wider than below
    black = (30, 30, 30)
    img, _, seg, pose = _figure(black, black, skirt=True)
    img[185:], seg[185:] = 235, 0
    legs = np.array([[60, 185], [140, 185], [122, 385], [78, 385]], np.int32)
    cv2.fillConvexPoly(img, legs, black)
    cv2.fillConvexPoly(seg, legs, 1)
    if below_knee == "tan boots":
        img[300:386][seg[300:386] > 0] = (60, 120, 170)
    else:
        img[288:291][seg[288:291] > 0] = (40, 40, 40)
    parts = _split_drawn(img, seg, pose)
    assert parts.kind == "one_colour" and not (parts.masks["upper"] > 0)[200:].any()


def _dress_under_open_jacket(dress, jacket):
    """A dress to below her knees; an open jacket's sleeves down her sides and its fronts."""
    img, _, seg, pose = _figure(dress, dress, skirt=True)
    for s_i, e_i, w_i, (sx, ex, wx) in ((11, 13, 15, (135, 150, 152)), (12, 14, 16, (65, 50, 48))):
        pose[e_i], pose[w_i] = (ex, 140, 0.99), (wx, 195, 0.99)
        for a, b, t in (((sx, 80), (ex, 140), 18), ((ex, 140), (wx, 195), 16)):
            cv2.line(img, a, b, jacket, t)
            cv2.line(seg, a, b, 1, t)
    for x0, x1 in ((60, 80), (120, 140)):
        cv2.rectangle(img, (x0, 70), (x1, 205), jacket, -1)
    return img, seg, pose


def test_a_dress_under_an_open_jacket_over_tights_of_the_jackets_colour_ends_at_its_hem():
    img, seg, pose = _dress_under_open_jacket((40, 40, 200), (30, 30, 30))
    _tights(img, seg, (30, 30, 30))
    parts = _split_drawn(img, seg, pose)
    up = parts.masks["upper"] > 0
    assert parts.kind == "dress"
    assert up[70:318].sum() > 0.99 * seg[70:318].sum() and not up[322:].any()


def test_a_dress_under_an_open_jacket_is_upper_as_a_whole():
    # a red dress; an open denim jacket's sleeves and fronts make her top's
    # sample two colours, but her chest is the dress's cloth
    dress, denim = (40, 40, 200), (150, 100, 60)
    img, seg, pose = _dress_under_open_jacket(dress, denim)
    parts = _split_drawn(img, seg, pose)
    assert parts.kind == "dress"
    assert ((parts.masks["upper"] > 0) == (seg > 0)).all() and not parts.masks["lower"].any()


def _bare_legged(col, bottom):
    """A one-colour top over bare legs (skin from the hips down), and `bottom`
    (polygons) in the same colour below it."""
    img = np.full((H, W, 3), 235, np.uint8)
    seg = np.zeros((H, W), np.uint8)
    *_, pose = _figure(col, col, skirt=False)
    for x0 in (70, 104):
        cv2.rectangle(img, (x0, 200), (x0 + 26, 380), (150, 170, 220), -1)
    for poly in [np.array([[60, 70], [140, 70], [140, 185], [60, 185]], np.int32)] + bottom:
        cv2.fillConvexPoly(img, poly, col)
        cv2.fillConvexPoly(seg, poly, 1)
    return img, seg, pose


@pytest.mark.parametrize("hem", [240, 255])
def test_a_short_dress_is_a_dress(hem):
    # it ends above her knees, so it does not fill the gap between them; but
    # between her thighs it is closed from the crotch down to its hem
    img, seg, pose = _bare_legged((40, 40, 200), [np.array([[60, 185], [140, 185], [150, hem], [50, hem]], np.int32)])
    parts = _split_drawn(img, seg, pose)
    assert parts.kind == "dress" and ((parts.masks["upper"] > 0) == (seg > 0)).all()


@pytest.mark.parametrize("crotch", [212, 236])
def test_one_colour_shorts_are_not_a_short_dress(crotch):
    # their legs leave the middle open below the crotch; a crotch reaching a
    # few rows into the gap's strip (y 236) is no skirt's length either
    legs = [np.array([[x0, 185], [x0 + 30, 185], [x0 + 30, 255], [x0, 255]], np.int32) for x0 in (62, 108)]
    img, seg, pose = _bare_legged((40, 40, 200), legs + [np.array([[62, 185], [138, 185], [138, crotch], [62, crotch]], np.int32)])
    parts = _split_drawn(img, seg, pose)
    assert parts.kind == "one_colour"
    assert not (parts.masks["upper"] > 0)[220:].any() and (parts.masks["lower"] > 0)[220:].sum() == seg[220:].sum()


def _sitting(top, legs, forearms=False):
    """Sitting with her knees raised and apart (hips at y 200, knees at 165,
    feet at 262): her lap between them, her thighs no lower than her waist;
    with `forearms`, pose has her forearms resting on her knees."""
    img = np.full((H, W, 3), 235, np.uint8)
    seg = np.zeros((H, W), np.uint8)
    bones = [((122, 200), (178, 165)), ((178, 165), (188, 262)), ((78, 200), (22, 165)), ((22, 165), (12, 262))]
    for m, v in ((img, legs), (seg, 1)):
        cv2.rectangle(m, (62, 185), (138, 215), v, -1)
        for a, b in bones:
            cv2.line(m, a, b, v, 28)
    for m, v in ((img, top), (seg, 1)):
        cv2.rectangle(m, (60, 70), (140, 184), v, -1)
    *_, pose = _figure(top, legs, skirt=False)
    pose[25:29, :2] = [(178, 165), (22, 165), (188, 262), (12, 262)]
    if forearms:
        pose[13:17] = [(150, 135, 0.99), (50, 135, 0.99), (190, 170, 0.99), (10, 170, 0.99)]
    return img, seg, pose


@pytest.mark.parametrize("forearms", [False, True])
@pytest.mark.parametrize("top, legs", [((30, 30, 30), (30, 30, 30)), ((40, 40, 200), (40, 40, 200)),
                                       ((40, 40, 200), (120, 60, 20))])
def test_sitting_with_raised_knees_her_legs_are_not_her_top(top, legs, forearms):
    # before: her lap filled the gap between her knees (a dress), or her
    # thighs lay above the waist line (no sample of the bottom at all); and
    # a sleeve's place along her forearms took the knees they rest on
    img, seg, pose = _sitting(top, legs, forearms)
    parts = _split_drawn(img, seg, pose)
    up, lo = parts.masks["upper"] > 0, parts.masks["lower"] > 0
    torso = np.zeros_like(up)
    torso[72:178, 60:141] = True
    leg = (seg > 0) & ~torso
    leg[:190, 55:146] = False      # (the waistband's rows are either's)
    assert parts.kind != "dress"
    assert up[torso].mean() > 0.95 and not (up & leg).any()
    assert lo[leg].mean() > 0.95


@pytest.mark.parametrize("hem", [260, 300])
def test_tights_of_her_tops_colour_below_a_skirt_are_not_the_top(hem):
    # a black top, a red skirt, black tights: the top's colour again, but on her legs and apart from it
    black, red = (30, 30, 30), (40, 40, 200)
    img, _, seg, pose = _figure(black, red, skirt=True)
    img[185:], seg[185:] = 235, 0
    _tights(img, seg, black, top=250)
    skirt = np.array([[60, 185], [140, 185], [150, hem], [50, hem]], np.int32)
    cv2.fillConvexPoly(img, skirt, red)
    cv2.fillConvexPoly(seg, skirt, 1)
    parts = _split_drawn(img, seg, pose)
    up = parts.masks["upper"] > 0
    assert parts.kind == "separates"
    assert up[70:180].sum() == seg[70:180].sum() and not up[190:].any()


def test_a_one_colour_jacket_over_trousers_ends_at_its_hem():
    # the jacket hangs to y 225, well below the waistband (y 186); its hem is
    # a line of shadow across her front, the one strong edge on plain cloth
    img, _, seg, pose = _figure((30, 30, 30), (30, 30, 30), skirt=False)
    cv2.rectangle(img, (58, 70), (142, 225), (30, 30, 30), -1)
    cv2.rectangle(seg, (58, 70), (142, 225), 1, -1)
    img[226:229, 62:139] = (75, 75, 75)
    parts = _split_drawn(img, seg, pose)
    up, lo = parts.masks["upper"] > 0, parts.masks["lower"] > 0
    assert parts.kind == "one_colour"
    assert up[70:220].sum() == seg[70:220].sum()            # all of the jacket
    assert not up[235:].any() and lo[235:].sum() == seg[235:].sum()


def test_someone_else_in_the_photo_is_not_part_of_her_outfit():
    _, _, seg, pose = _figure((30, 30, 30), (30, 30, 30), skirt=False)
    inside = seg > 0
    inside[100:300, 170:195] = True                       # a passer-by at the edge, apart from her
    mine = _her_pieces(inside, pose)
    assert not mine[:, 170:].any() and (mine[:, :160] == inside[:, :160]).all()
    pose[:, 2] = 0.0                                      # no pose point seen: nothing to go by
    assert (_her_pieces(inside, pose) == inside).all()


def test_a_table_she_leans_a_hand_on_is_not_part_of_her_outfit():
    _, _, seg, pose = _figure((30, 30, 30), (30, 30, 30), skirt=False)
    inside = seg > 0
    inside[150:290, 160:200] = True                       # a table the person mask took, apart from her
    pose[16] = (180, 160, 0.99)                           # her hand resting on it
    mine = _her_pieces(inside, pose)
    assert mine[:, :150].sum() == inside[:, :150].sum()   # all of her
    assert 0 < mine[150:290, 160:200].sum() < 0.1 * inside[150:290, 160:200].sum()   # of the table, her hand


def test_a_photo_is_cropped_to_all_of_her_though_the_model_is_half_sure_of_her_torso():
    # bent over a table: sure of her legs, half sure of her torso between them
    person = np.zeros((180, 256), np.float32)
    person[20:70, 150:215] = 0.35                         # her torso, half sure
    person[25:60, 160:200] = 0.7                          # ... its surest part
    person[70:170, 160:175] = 0.9                         # her legs
    person[70:165, 195:208] = 0.9
    person[100:110, 20:40] = 0.9                          # someone far off, apart from her
    person[150:160, 208:225] = 0.3                        # a bag beside her, joined through the blur,
    person[160:175, 215:235] = 0.9                        # ... too small to be part of her
    assert person_extent(person) == (160, 25, 48, 145)
    person[66:70, 150:215] = 0.1                          # her torso not joined to her legs: a leg alone
    assert person_extent(person) == (160, 70, 15, 100)
    assert person_extent(np.full((180, 256), 0.3, np.float32)) is None
    speck = np.zeros((180, 256), np.float32)
    speck[10:15, 10:15] = 0.9                             # under PERSON_MIN of the photo
    assert person_extent(speck) is None


def test_a_foot_she_stands_on_is_never_garment_a_raised_one_only_probably():
    _, _, seg, pose = _figure((30, 30, 30), (30, 30, 30), skirt=False)
    pose[27:33] = [[122, 370, .99], [78, 370, .99], [122, 388, .99], [78, 388, .99], [140, 390, .99], [60, 390, .99]]
    pose[28, :2], pose[30, :2], pose[32, :2] = (70, 240), (70, 255), (55, 258)   # one foot raised to the other knee
    unlikely, never = np.zeros((H, W), np.uint8), np.zeros((H, W), np.uint8)
    mark_shoes(unlikely, never, pose)
    assert never[383, 126] and unlikely[383, 126]                 # inside her standing shoe
    assert not never[:372].any()                                  # nothing above that ankle, nor the raised foot
    assert unlikely[251, 65] and not unlikely[:242].any()         # the raised foot: colour decides


def test_a_raised_shoe_on_its_own_past_a_bare_shin_is_not_garment():
    # the cut kept a sports bra, shorts, and a black raised shoe of the bra's
    # colour as a piece of its own; the shoe holds no seed and lies where
    # her shoe is probably not garment
    seg = np.zeros((H, W), np.uint8)
    seg[80:130, 60:140] = 1                       # the top, seeded
    seg[185:230, 62:138] = 1                      # the shorts, seeded
    seg[262:292, 140:190] = 1                     # the raised shoe
    seg[300:330, 10:50] = 1                       # something big and unseeded elsewhere: colour's call
    seeds = np.zeros((H, W), bool)
    seeds[100:110, 90:110] = seeds[200:210, 90:110] = True
    unlikely = np.zeros((H, W), bool)
    unlikely[255:300, 135:195] = True
    kept = keep_big_parts(seg, seeds, unlikely) > 0
    assert not kept[262:292, 140:190].any()
    assert kept[80:130, 60:140].all() and kept[185:230, 62:138].all() and kept[300:330, 10:50].all()
    unlikely[80:130, 60:140] = True               # a seeded piece stays, wherever it lies
    assert (keep_big_parts(seg, seeds, unlikely) > 0)[80:130, 60:140].all()
    assert (keep_big_parts(seg, seeds) > 0)[262:292, 140:190].all()   # without the places, size decides


def test_the_hem_of_shorts_of_her_tops_colour_is_not_a_jackets():
    # a cuff line across the shorts at y 226, bare legs below: nothing of the
    # trousers goes on under it, so the top still ends at the waistband
    img, _, seg, pose = _figure((30, 30, 30), (30, 30, 30), skirt=False)
    img[226:229, 62:139] = (75, 75, 75)
    img[232:] = 235
    seg[232:] = 0
    parts = _split_drawn(img, seg, pose)
    up = parts.masks["upper"] > 0
    assert parts.kind == "one_colour" and up[80:170].sum() == seg[80:170].sum() and not up[200:].any()


def test_a_raised_black_shoe_is_no_sample_of_her_shorts():
    # a black top over short grey shorts, bare legs, knees hidden from pose;
    # her raised black shoe lies where the shorts' colour is sampled
    img, _, seg, pose = _figure((30, 30, 30), (110, 110, 110), skirt=False)
    img[262:] = 235
    seg[262:] = 0
    img[292:314, 62:98] = (25, 25, 25)
    seg[292:314, 62:98] = 1
    pose[25:27, 2] = 0.0
    pose[28], pose[30], pose[32] = (80, 292, 0.99), (66, 306, 0.99), (96, 310, 0.99)
    parts = _split_drawn(img, seg, pose)
    up = parts.masks["upper"] > 0
    assert parts.kind == "separates"
    assert up[80:180].sum() > 0.95 * seg[80:180].sum() and not up[200:262].any()


def test_a_forearm_across_her_lap_is_no_sample_of_her_dress():
    # a one-colour dress; her forearm lies across her thighs, where the
    # bottom's colour is sampled, and the cut kept it
    img, _, seg, pose = _figure((160, 80, 150), (160, 80, 150), skirt=True)
    arm = np.zeros(seg.shape, bool)
    arm[215:300, 50:150] = True   # over the thighs and down past the samples' rows
    img[arm] = (120, 160, 215)
    seg[arm] = 1
    lab = cv2.cvtColor(img, cv2.COLOR_BGR2Lab)
    parts = split_parts(img, lab, seg, pose, body_layout(pose, (W, H)), not_cloth=arm)
    assert parts.kind == "dress"
    assert ((parts.masks["upper"] > 0) == (seg > 0)).all()


def test_a_long_coat_over_her_thighs_is_no_sample_of_her_trousers():
    # a camel coat hangs to y 255, over the upper half of where the bottom's
    # colour is sampled on her thighs (y 227-276); navy trousers below it
    img, _, seg, pose = _figure((60, 120, 170), (90, 40, 30), skirt=False)
    cv2.rectangle(img, (56, 70), (144, 255), (60, 120, 170), -1)
    cv2.rectangle(seg, (56, 70), (144, 255), 1, -1)
    parts = _split_drawn(img, seg, pose)
    up, lo = parts.masks["upper"] > 0, parts.masks["lower"] > 0
    assert parts.kind == "separates"
    assert up[70:256].sum() == seg[70:256].sum()             # all of the coat
    assert not up[262:].any() and lo[262:].sum() == seg[262:].sum()


def test_a_shorts_band_across_a_bare_midriff_is_no_sample_of_her_top():
    # a crop top, a long bare midriff, high-waisted shorts rising into the
    # torso core (where the top's colour is sampled) across the bare skin;
    # knees hidden from pose, so the shorts' colour is sampled low on them
    img, _, seg, pose = _figure((30, 30, 30), (110, 110, 110), skirt=False)
    img[122:160] = 235
    seg[122:160] = 0
    img[160:215, 62:139], seg[160:215, 62:139] = (110, 110, 110), 1
    img[272:] = 235
    seg[272:] = 0
    pose[25:27, 2] = 0.0
    parts = _split_drawn(img, seg, pose)
    up = parts.masks["upper"] > 0
    assert up[80:122].sum() > 0.95 * seg[80:122].sum() and not up[160:].any()


def _midriff_rows(seg):
    """`_midriff_gap` on the drawn figure's geometry: shoulders at y 80 and 70
    apart, hips at y 200, so the waist line lies WAIST_FRAC of 120 above them."""
    below = ((np.arange(H, dtype=np.float32) - (200 - WAIST_FRAC * 120)) / 120.0)[:, None]
    middle = np.abs(np.arange(W) - 100.0)[None, :] < 0.3 * 70
    return _midriff_gap(seg > 0, np.broadcast_to(below, (H, W)), np.broadcast_to(middle, (H, W)))


def test_a_bare_midriff_parts_top_and_skirt_though_something_beside_her_joins_them():
    # a crop top and a skirt, bare skin across her middle; the wall beside
    # her (taken by the person mask) joins them, so they are one piece
    _, _, seg, _ = _figure((30, 30, 30), (45, 25, 75), skirt=True)
    seg[140:185, 60:141] = 0
    seg[90:240, 141:170] = 1
    gap = _midriff_rows(seg)
    assert gap is not None
    above, under = gap
    assert above.any() and under.any()
    assert np.nonzero(above)[0].max() < 140 and np.nonzero(under)[0].min() >= 185
    assert not above[:, 141:].any() and not under[:, 141:].any()     # her middle, not the wall


def test_a_dress_or_a_top_alone_or_bare_thighs_are_no_bare_midriff():
    _, _, seg, _ = _figure((30, 30, 30), (30, 30, 30), skirt=True)
    assert _midriff_rows(seg) is None
    seg[230:250] = 0                  # bare thighs between a mini skirt and over-knee socks
    assert _midriff_rows(seg) is None
    seg[140:] = 0                     # a crop top over nothing she wears below (out of view, or bare)
    assert _midriff_rows(seg) is None


def test_a_crop_top_over_a_mini_skirt_is_two_garments_when_pose_sees_no_knees():
    # no thighs to sample the skirt from, and nothing of her low enough for
    # the fallback sample: the bare midriff alone tells the skirt from the top
    img, _, seg, pose = _figure((30, 30, 30), (45, 25, 160), skirt=True)
    img[140:185, 60:141] = (150, 170, 220)
    seg[140:185, 60:141] = 0
    img[245:] = 235
    seg[245:] = 0
    pose[25:29, 2] = 0.0
    parts = _split_drawn(img, seg, pose)
    up = parts.masks["upper"] > 0
    assert parts.kind == "separates"
    assert up[80:140].sum() > 0.95 * seg[80:140].sum() and not up[185:].any()


def test_a_top_of_her_skins_colour_is_still_her_top():
    # the skin model, taught by her face, claims all of her chest: a beige
    # knit, not bare skin, so the top is kept
    skin = (150, 170, 220)
    img, _, seg, pose = _figure((140, 165, 215), (120, 60, 20), skirt=False)
    person = seg.astype(np.float32)
    _draw_face(img, person, skin, neck=True)
    model = GarmentModel.build(img, cv2.GaussianBlur(person, (3, 3), 0), pose)
    assert model is not None
    g = _at_figure_size(model.seg)
    assert g[90:175, 70:130].mean() > 0.9 and g[200:370, 66:92].mean() > 0.9
    # all of the top, not only the core of her torso the skin model is kept off
    assert g[90:175, 62:138].mean() > 0.9


def test_bare_skin_at_her_neckline_is_not_garment_though_grabcut_takes_it_with_her_top():
    # A black top with a deep V neck, the skin lit like her face at the top
    # and shaded toward the point, in front of a busy background: GrabCut,
    # taught the shade as the top's, takes all of the V. What the face's
    # colour says is skin leaves the garment (and every part of it).
    skin = (150, 170, 220)
    img, _, seg, pose = _figure((30, 30, 30), (120, 60, 20), skirt=False)
    blocks = np.random.default_rng(3).integers(0, 256, (H // 20, W // 20, 3), dtype=np.uint8)
    blocks = cv2.resize(blocks, (W, H), interpolation=cv2.INTER_NEAREST)
    img[seg == 0] = blocks[seg == 0]
    person = seg.astype(np.float32)
    _draw_face(img, person, skin, neck=True)
    v = np.zeros((H, W), np.uint8)
    cv2.fillConvexPoly(v, np.array([[72, 70], [128, 70], [100, 140]], np.int32), 1)
    for y in range(70, 141):
        img[y][v[y] > 0] = (np.array(skin) * (1 - 0.45 * (y - 70) / 70)).astype(np.uint8)
    model = GarmentModel.build(img, cv2.GaussianBlur(person, (3, 3), 0), pose)
    assert model is not None
    g, up = _at_figure_size(model.seg), _at_figure_size(model.part_mask("upper"))
    lit = v[70:100] > 0
    assert g[70:100][lit].mean() < 0.1 and up[70:100][lit].mean() < 0.1
    top = seg.astype(bool) & (v == 0)
    assert g[90:175][top[90:175]].mean() > 0.95 and up[90:175][top[90:175]].mean() > 0.95


def _print(img, mask, a, b, share_a, seed):
    """Paint `mask` with a print of colours a and b, `share_a` of it in a (4 px dots)."""
    rng = np.random.default_rng(seed)
    dots = rng.random((H // 4 + 1, W // 4 + 1)) < share_a
    dots = np.kron(dots, np.ones((4, 4), bool))[:H, :W]
    img[mask & dots] = a
    img[mask & ~dots] = b


def test_a_printed_dress_is_one_cloth_though_its_median_moves():
    # more red on the bodice, more blue on the skirt: the medians differ, the
    # colours are the same; it is a dress, upper takes all of it
    img, _, seg, pose = _figure((0, 0, 0), (0, 0, 0), skirt=True)
    m = seg > 0
    top = m.copy()
    top[186:] = False
    _print(img, top, (40, 40, 200), (200, 60, 40), 0.75, 1)
    _print(img, m & ~top, (40, 40, 200), (200, 60, 40), 0.3, 2)
    parts = _split_drawn(img, seg, pose)
    assert parts.kind == "dress"
    assert ((parts.masks["upper"] > 0) == m).all() and not parts.masks["lower"].any()


@pytest.mark.parametrize("seen", [(), (25,), (26,)])
def test_a_long_dress_over_knees_pose_cannot_see_is_a_dress(seen):
    img, _, seg, pose = _figure((0, 0, 0), (0, 0, 0), skirt=True)
    long_skirt = np.array([[60, 185], [140, 185], [165, 385], [35, 385]], np.int32)
    cv2.fillConvexPoly(seg, long_skirt, 1)
    m = seg > 0
    _print(img, m, (40, 40, 200), (200, 60, 40), 0.5, 3)
    pose[25:29, 2] = 0.1                      # knees and ankles hidden under it,
    for i in seen:                            # ... or one knee made out through the cloth
        pose[i, 2] = 0.9
    parts = _split_drawn(img, seg, pose)
    assert parts.kind == "dress" and ((parts.masks["upper"] > 0) == m).all()


def test_a_long_dress_with_one_knee_a_little_raised_is_still_a_dress():
    # sitting on a stool, legs crossed: one knee 0.37 torso lengths below her
    # waist, the other 0.87; that is no lap between raised knees
    img, _, seg, pose = _figure((0, 0, 0), (0, 0, 0), skirt=True)
    long_skirt = np.array([[60, 185], [140, 185], [165, 385], [35, 385]], np.int32)
    cv2.fillConvexPoly(seg, long_skirt, 1)
    cv2.fillConvexPoly(img, long_skirt, (0, 0, 0))
    pose[26, :2] = (78, 230)
    parts = _split_drawn(img, seg, pose)
    assert parts.kind == "dress" and ((parts.masks["upper"] > 0) == (seg > 0)).all()


def test_pose_body_mask_decides_her_and_the_selfie_models_extra_is_only_maybe():
    person = np.zeros((40, 20), np.float32)
    person[5:35, 6:14] = 1.0                   # a whole body: 30% of the picture
    assert with_body(person, None)[0] is person and with_body(person, None)[1] is None
    body = np.zeros((80, 40), np.float32)      # pose's mask comes at the photo's size
    body[10:60, 14:26] = 0.9
    her, maybe = with_body(person, body)
    assert her.shape == person.shape and (her[8:28, 8:12] > 0.5).all() and her[:, :6].max() == 0
    assert (maybe == ((person > 0.5) & (her <= 0.5))).all() and maybe[20, 6] and not maybe[20, 10]
    close = np.zeros((40, 20), np.float32)
    close[10:, 2:18] = 1.0                     # a close-up, 60% of it: pose's mask is not asked
    assert with_body(close, body)[0] is close and with_body(close, body)[1] is None
    clutter = np.zeros((80, 40), np.float32)
    clutter[40:70, 0:12] = 0.9                 # pose's "body" where the selfie model sees nobody
    assert with_body(person, clutter)[0] is person and with_body(person, clutter)[1] is None


def test_a_flared_skirt_past_the_body_mask_is_kept_and_the_floor_beside_her_is_not():
    # pose's body mask is tight: it leaves out the skirt's flare; the selfie
    # model takes the flare and also a dark patch of floor by her feet. The
    # flare has her skirt's colour and is kept, the floor patch is not.
    img, _, seg, pose = _figure((40, 40, 200), (150, 90, 30), skirt=True)
    img[330:385, 30:170] = (70, 70, 70)
    selfie = seg.astype(np.float32)
    selfie[330:385, 30:170] = 1.0
    body = np.zeros((H, W), np.float32)
    body[70:186, 60:141] = 1.0
    body[185:320, 72:129] = 1.0
    body[320:380, 72:129] = 1.0        # her legs below the hem
    img[320:380, 72:129] = (150, 170, 220)
    her, maybe = with_body(selfie, body)

    def garment(**kw):
        model = GarmentModel.build(img, her, pose, **kw)
        return _at_figure_size(model.seg)

    g = garment(maybe=maybe)
    flare = np.zeros((H, W), np.uint8)
    cv2.fillConvexPoly(flare, np.array([[60, 185], [72, 185], [72, 318], [42, 318]], np.int32), 1)
    flare = flare > 0
    assert g[flare].mean() > 0.8 and g[80:180, 65:135].mean() > 0.9
    assert g[335:385, 30:70].mean() < 0.1 and g[335:385, 130:170].mean() < 0.1
    assert garment()[flare].mean() < 0.2       # without the selfie model's extra the flare is lost


def test_a_tall_photo_is_not_upscaled_past_the_work_budget():
    # the work image is 320 wide at most and WORK_PIXELS in all: a 1:4 photo
    # is worked on narrower rather than scaled up to 320x1280
    img, _, seg, pose = _figure((40, 40, 200), (120, 60, 20), skirt=False)
    img = cv2.copyMakeBorder(img, 0, 400, 0, 0, cv2.BORDER_CONSTANT, value=(235, 235, 235))
    person = cv2.copyMakeBorder(seg, 0, 400, 0, 0, cv2.BORDER_CONSTANT, value=0).astype(np.float32)
    model = GarmentModel.build(img, person, pose)
    assert model.seg.shape[1] < 320 and model.seg.size <= WORK_PIXELS
    g = cv2.resize(model.seg, (W, 2 * H), interpolation=cv2.INTER_NEAREST) > 0
    assert g[75:180, 65:135].mean() > 0.95


def test_one_colour_trousers_over_knees_pose_cannot_see_are_not_a_dress():
    img, _, seg, pose = _figure((30, 30, 30), (30, 30, 30), skirt=False)
    pose[25:29, 2] = 0.1
    parts = _split_drawn(img, seg, pose)
    assert parts.kind == "one_colour" and (parts.masks["lower"] > 0)[220:].sum() == seg[220:].sum()


def test_a_white_blouse_over_a_beige_skirt_is_two_garments():
    # near plain colours share the overlap's coarse bins; they are still two
    img, _, seg, pose = _figure((235, 240, 242), (200, 228, 240), skirt=True)   # Lab distance 12.6
    parts = _split_drawn(img, seg, pose)
    assert parts.kind == "separates"
    assert not (parts.masks["upper"] > 0)[200:].any() and (parts.masks["lower"] > 0)[200:].sum() == seg[200:].sum()


def test_her_forearm_split_off_at_the_elbow_is_still_hers():
    _, _, seg, pose = _figure((30, 30, 30), (30, 30, 30), skirt=False)
    inside = seg > 0
    inside[150:200, 150:160] = True                       # a forearm, apart from her in the mask
    pose[16] = (161, 195, 0.99)                           # its wrist point a pixel off its edge
    assert _her_pieces(inside, pose)[150:200, 150:160].all()



HAIR, SKIN = (25, 22, 20), (150, 170, 220)


def _dark_haired(top, bottom):
    """The drawn figure with a head of near-black hair round her face; the
    person mask (float) takes the head in."""
    img, _, seg, pose = _figure(top, bottom, skirt=False)
    person = seg.astype(np.float32)
    cv2.ellipse(img, (100, 36), (26, 32), 0, 0, 360, HAIR, -1)
    cv2.ellipse(person, (100, 36), (26, 32), 0, 0, 360, 1.0, -1)
    cv2.ellipse(img, (100, 44), (15, 20), 0, 0, 360, SKIN, -1)      # her face in the hair
    return img, person, pose


def test_black_trousers_under_dark_hair_are_still_garment():
    # hair sampled round her head is near-black, as are her trousers; hair
    # ends above her hips, so the trousers must not be taken for it (a dark
    # patch on her top, apart from her hair, stays colour's call)
    img, person, pose = _dark_haired((120, 60, 230), HAIR)
    cv2.rectangle(img, (70, 70), (82, 150), HAIR, -1)
    model = GarmentModel.build(img, cv2.GaussianBlur(person, (3, 3), 0), pose)
    assert model is not None
    g = _at_figure_size(model.seg)
    assert g[230:370, 66:92].mean() > 0.9 and g[230:370, 108:134].mean() > 0.9   # both trouser legs


def test_a_dark_lock_over_her_top_is_not_garment_though_her_trousers_are_its_colour():
    # black trousers put near-black in the garment's colours, so GrabCut would
    # take the lock hanging from her head over her pink top back; being far
    # nearer her hair's colour than her top's, it is surely hair
    img, person, pose = _dark_haired((120, 60, 230), HAIR)
    lock = np.array([[76, 30], [90, 30], [84, 150], [70, 150]], np.int32)
    cv2.fillPoly(img, [lock], HAIR)
    cv2.fillPoly(person, [lock], 1.0)
    model = GarmentModel.build(img, cv2.GaussianBlur(person, (3, 3), 0), pose)
    g = _at_figure_size(model.seg)
    assert g[75:145, 72:80].mean() < 0.2                                            # the lock
    assert g[90:175, 90:135].mean() > 0.95 and g[230:370, 66:92].mean() > 0.9      # top and trousers


def test_a_ponytail_of_her_tops_colour_is_not_garment():
    # hair and top the same near-black, so colour cannot tell them; a
    # ponytail swinging out beside her head, above her chin, is still hair
    img, person, pose = _dark_haired(HAIR, (120, 60, 20))
    tail = np.array([[118, 20], [150, 26], [158, 72], [136, 72], [120, 44]], np.int32)   # down onto her shoulder
    cv2.fillPoly(img, [tail], HAIR)
    cv2.fillPoly(person, [tail], 1.0)
    model = GarmentModel.build(img, cv2.GaussianBlur(person, (3, 3), 0), pose)
    assert model is not None
    g = _at_figure_size(model.seg)
    assert g[30:60, 130:150].mean() < 0.1                                       # the ponytail
    assert g[90:175, 70:130].mean() > 0.9 and g[230:370, 66:92].mean() > 0.9     # top and trousers


def test_a_black_jacket_open_over_a_red_top_on_a_dark_haired_woman_is_garment():
    # her hair and her jacket are the same near-black; hair does not reach
    # round her elbows, so there that colour is the jacket's sleeves
    hair, skin = (25, 22, 20), (150, 170, 220)
    img, _, seg, pose = _figure((40, 40, 200), (120, 60, 20), skirt=False)
    person = seg.astype(np.float32)
    for x0, x1 in ((60, 80), (120, 140)):                             # the open jacket's fronts
        cv2.rectangle(img, (x0, 70), (x1, 185), hair, -1)
    for sh, el, wr in (((135, 80), (150, 140), (152, 190)), ((65, 80), (50, 140), (48, 190))):
        for a, b in ((sh, el), (el, wr)):
            cv2.line(img, a, b, hair, 16)
            cv2.line(person, a, b, 1.0, 16)
    pose[[13, 14, 15, 16]] = [[150, 140, .99], [50, 140, .99], [152, 190, .99], [48, 190, .99]]
    cv2.ellipse(img, (100, 36), (26, 32), 0, 0, 360, hair, -1)
    cv2.ellipse(person, (100, 36), (26, 32), 0, 0, 360, 1.0, -1)
    cv2.ellipse(img, (100, 44), (15, 20), 0, 0, 360, skin, -1)
    model = GarmentModel.build(img, cv2.GaussianBlur(person, (3, 3), 0), pose)
    assert model is not None
    g = _at_figure_size(model.seg)
    assert g[90:175, 64:78].mean() > 0.9 and g[90:175, 122:136].mean() > 0.9     # both fronts
    assert g[100:130, 138:146].mean() > 0.8                                      # a sleeve


BLONDE = (140, 200, 230)


def _blonde_lock_over_black_top():
    """The dark-haired figure in a top of her roots' near-black, her hair
    blonde below her eyes and a blonde lock hanging over her top."""
    img, person, pose = _dark_haired(HAIR, (120, 60, 20))
    cv2.ellipse(img, (100, 36), (26, 32), 0, 0, 180, BLONDE, -1)          # her hair below her eyes
    cv2.ellipse(img, (100, 44), (15, 20), 0, 0, 360, SKIN, -1)
    lock = np.array([[122, 40], [130, 40], [134, 150], [126, 150]], np.int32)
    cv2.fillPoly(img, [lock], BLONDE)
    cv2.fillPoly(person, [lock], 1.0)
    model = GarmentModel.build(img, cv2.GaussianBlur(person, (3, 3), 0), pose)
    assert model is not None
    return _at_figure_size(model.seg)


def test_blonde_lengths_of_dark_rooted_hair_over_a_top_of_the_roots_colour_are_not_garment():
    # the hair sampled round her head is near-black at the roots and blonde
    # below, so one colour model of it takes her near-black top too, and
    # only hair above her chin was taken out: the blonde lock over her top
    # stayed garment. Split in two tones, the top is the dark one, and the
    # blonde lying on it is hair.
    g = _blonde_lock_over_black_top()
    assert g[60:145, 127:131].mean() < 0.1                                       # the lock
    assert g[90:175, 70:115].mean() > 0.95 and g[230:370, 66:92].mean() > 0.9     # top and trousers


def test_hair_tones_are_not_judged_on_a_torso_that_is_not_upright(monkeypatch):
    # bent over, her hair hangs across her chest: a tone of it there says
    # nothing about her top, and the lock is left to colour as before
    monkeypatch.setattr(garment, "upright", lambda torso: False)
    assert _blonde_lock_over_black_top()[60:145, 127:131].mean() > 0.5


def test_without_pose_her_clothes_are_still_cut_from_the_person_mask_below_her_face():
    # a tennis photo gives no pose at some sizes, but the face detector finds
    # her; the hair model then has no head to sample
    img, person, _ = _dark_haired((120, 60, 230), (120, 60, 20))
    model = GarmentModel.build(img, cv2.GaussianBlur(person, (3, 3), 0), None, face_box=(85, 24, 30, 40))
    assert model is not None
    g = _at_figure_size(model.seg)
    assert g[150:175, 70:130].mean() > 0.9 and g[230:370, 66:92].mean() > 0.9    # top and trousers
    assert not g[24:64, 85:115].any()                                            # her face


def test_with_neither_pose_nor_face_the_person_mask_alone_is_no_one():
    # the selfie model takes colour noise for a person over most of the
    # picture; with no body and no face found, nothing is garment (the
    # drawn figure would be cut if either were there: the test above)
    img, person, _ = _dark_haired((120, 60, 230), (120, 60, 20))
    assert GarmentModel.build(img, cv2.GaussianBlur(person, (3, 3), 0), None) is None
    noise = np.random.default_rng(3).integers(0, 256, (400, 300, 3), dtype=np.uint8)
    assert GarmentModel.build(noise, np.full((400, 300), 0.98, np.float32), None) is None


def test_upright_is_her_torso_near_vertical_not_bent_over_or_upside_down():
    # Layout.torso: shoulders' edge first, hips' edge last
    torso = np.array([[75, 90], [125, 90], [122, 190], [78, 190]], np.float32)
    assert upright(torso)
    leaning = torso.copy()
    leaning[:2, 0] += 50                                # 27 degrees: walking, dancing
    assert upright(leaning)
    bent = torso.copy()
    bent[:2] = [[190, 160], [190, 200]]                 # shoulders out level with her hips
    assert not upright(bent)
    assert not upright(torso * [1, -1])                # upside down


@pytest.mark.parametrize("lit", [13, 14])
def test_one_elbow_of_her_hairs_colour_is_a_sleeve_of_it_though_the_other_is_in_shade(lit):
    # light from one side puts the other sleeve in another shade; which
    # side that is must not matter (a mirrored photo's top was taken as hair)
    pose = np.zeros((33, 3), np.float32)
    pose[[11, 12, 13, 14], :] = [[140, 50, .99], [60, 50, .99], [150, 120, .99], [50, 120, .99]]
    inside = np.ones((200, 200), bool)
    hair = np.zeros((200, 200), np.uint8)
    x, y = (int(v) for v in pose[lit, :2])
    cv2.circle(hair, (x, y), 10, 1, -1)
    hair[y + 6:, :] = 0                                   # most of that elbow, none of the other
    assert sleeves_like(hair > 0, inside, pose)
    assert not sleeves_like(np.zeros((200, 200), bool), inside, pose)
    hair[y - 2:, :] = 0                                   # long hair reaching a third of an elbow
    assert not sleeves_like(hair > 0, inside, pose)


def test_bare_arms_and_legs_over_half_of_her_are_still_skin():
    # a sleeveless top and short shorts: her face's colour is more than half
    # of her, which is a summer outfit, not a skin-toned one
    skin = (150, 170, 220)
    img, _, seg, pose = _figure((40, 40, 200), (120, 60, 20), skirt=False)
    person = seg.astype(np.float32)
    img[232:381] = np.where(seg[232:381, :, None] > 0, np.array(skin, np.uint8), img[232:381])
    _draw_bare_arms(img, person, pose, skin)
    pose[[27, 28], 2] = 0.0          # no wrist or ankle seen: the bare-limb check has no forearm or shin to go by
    _draw_face(img, person, skin)
    model = GarmentModel.build(img, cv2.GaussianBlur(person, (3, 3), 0), pose)
    assert model is not None
    g = _at_figure_size(model.seg)
    assert g[90:175, 70:130].mean() > 0.9 and g[195:225, 70:130].mean() > 0.9   # the top and the shorts
    assert g[245:370].mean() < 0.02 and g[100:180, 145:160].mean() < 0.1          # bare legs, a bare arm


def test_a_sports_outfit_nearly_three_quarters_bare_is_still_skin():
    # a short sports top over a bare midriff, shorts, bare arms and legs:
    # her face's colour is 0.7-0.75 of her (a warm cast pushes a real one
    # there), still a summer outfit; a skin-toned dress is 0.8-0.9
    skin = (150, 170, 220)
    img, _, seg, pose = _figure((40, 40, 200), (120, 60, 20), skirt=False)
    person = seg.astype(np.float32)
    img[232:381] = np.where(seg[232:381, :, None] > 0, np.array(skin, np.uint8), img[232:381])
    img[120:185, 60:141] = skin                       # the midriff below a short top
    _draw_bare_arms(img, person, pose, skin)
    pose[[27, 28], 2] = 0.0
    _draw_face(img, person, skin)
    model = GarmentModel.build(img, cv2.GaussianBlur(person, (3, 3), 0), pose)
    assert model is not None
    g = _at_figure_size(model.seg)
    assert g[90:115, 70:130].mean() > 0.9 and g[195:225, 70:130].mean() > 0.9   # the top and the shorts
    assert g[125:180, 70:130].mean() < 0.05, "her bare midriff taken as garment"
    assert g[245:370].mean() < 0.02 and g[100:180, 145:160].mean() < 0.1          # bare legs, a bare arm


def test_a_dress_of_her_skins_colour_is_not_taken_for_skin():
    # a cream dress near her face's colour: "skin" would be nearly all of
    # her, which means the skin model cannot tell, so it is not used
    skin = (150, 170, 220)
    img, _, seg, pose = _figure((145, 168, 218), (145, 168, 218), skirt=True)
    person = seg.astype(np.float32)
    _draw_bare_arms(img, person, pose, skin)
    _draw_face(img, person, skin, neck=True)
    model = GarmentModel.build(img, cv2.GaussianBlur(person, (3, 3), 0), pose)
    assert model is not None
    g = _at_figure_size(model.seg)
    assert g[90:175, 66:134].mean() > 0.9, "the bodice lost"
    assert g[200:310, 70:130].mean() > 0.9, "the skirt lost"


def test_trousers_of_her_skins_chroma_but_far_darker_than_her_face_are_not_skin():
    # brown check or khaki trousers: the face's skin model (chroma only)
    # claims all of her thighs, but they are far darker than her face, as
    # bare legs in the same light are not; under a black top that is not
    # enough "skin" for the model to be given up on as a whole
    skin = (150, 170, 220)                                  # Lab L 188
    img, _, seg, pose = _figure((30, 30, 30), (73, 91, 129), skirt=False)   # L 108, her chroma
    person = seg.astype(np.float32)
    _draw_face(img, person, skin, neck=True)
    model = GarmentModel.build(img, cv2.GaussianBlur(person, (3, 3), 0), pose)
    assert model is not None
    g = _at_figure_size(model.seg)
    assert g[90:175, 70:130].mean() > 0.9, "the top lost"
    assert g[215:370, 66:92].mean() > 0.9 and g[215:370, 108:134].mean() > 0.9, "the trousers taken for skin"


def test_bare_legs_a_little_darker_than_her_face_are_still_skin():
    # shorts over bare legs in shade: the legs' lightness is near her face's
    # (within SKIN_THIGH_DL), so they stay skin
    skin = (150, 170, 220)
    legs = (120, 138, 185)                                  # her skin, about 30 darker in L
    img, _, seg, pose = _figure((40, 40, 200), (120, 60, 20), skirt=False)
    person = seg.astype(np.float32)
    img[232:381] = np.where(seg[232:381, :, None] > 0, np.array(legs, np.uint8), img[232:381])
    pose[[27, 28], 2] = 0.0          # no ankle seen: the bare-shin check has no shin to go by
    _draw_face(img, person, skin, neck=True)
    model = GarmentModel.build(img, cv2.GaussianBlur(person, (3, 3), 0), pose)
    assert model is not None
    g = _at_figure_size(model.seg)
    assert g[195:225, 70:130].mean() > 0.9, "the shorts lost"
    assert g[245:370].mean() < 0.05, "her bare legs taken as garment"


def test_compression_specks_in_her_bare_midriff_are_skin_not_garment():
    # a crop top over a bare midriff in a heavily compressed photo: blocks of
    # a slightly different tone dot her skin, outside the face's colour model;
    # seeded as garment they would teach GrabCut her skin
    skin = (150, 170, 220)
    img, _, seg, pose = _figure((40, 40, 200), (120, 60, 20), skirt=False)
    person = seg.astype(np.float32)
    img[130:185, 60:141] = skin
    img[232:381] = np.where(seg[232:381, :, None] > 0, np.array(skin, np.uint8), img[232:381])
    specks = np.zeros((H, W), bool)
    for y in range(138, 180, 16):
        for x in range(70, 132, 16):
            specks[y:y + 3, x:x + 3] = True
    img[specks] = (130, 160, 225)
    _draw_face(img, person, skin)
    model = GarmentModel.build(img, cv2.GaussianBlur(person, (3, 3), 0), pose)
    assert model is not None
    g = _at_figure_size(model.seg)
    assert g[90:125, 70:130].mean() > 0.9                  # the top
    assert g[specks].mean() < 0.1 and g[135:180, 70:130].mean() < 0.02     # her midriff, specks and all


def test_only_small_holes_in_solid_skin_are_filled():
    skin = np.zeros((80, 80), bool)
    skin[10:70, 10:70] = True
    skin[20:23, 20:23] = False          # a speck: filled
    skin[30:42, 30:42] = False          # too big to be a speck
    skin[10:70, 64:66] = False          # a strap across her shoulder, out to the garment: not a hole
    skin[26:28, 14:16] = False
    skin[28:30, 16:18] = False          # two specks touching at a corner: each is a hole of 4
    out = _fill_small_holes(skin, 10)
    assert out[20:23, 20:23].all() and out[26:30, 14:18].all()
    assert not out[30:42, 30:42].any() and not out[10:70, 64:66].any()
    assert (out & ~skin).sum() == 9 + 8
    # "skin" riddled with specks (a tenth of it) is cloth near her skin's colour
    speckled = skin.copy()
    speckled[12:70:3, 12:60:3] = False
    assert (_fill_small_holes(speckled, 10) == speckled).all()


def test_the_sleeves_of_a_blouse_tucked_into_dark_trousers_are_not_bare_arms():
    # a warm light blouse (a colour the generic skin rule passes, unlike her
    # face's) tucked into black high-waisted trousers: most of her torso and
    # her thighs are black, so her sleeves are far from that mix, but they are
    # her top's own colour
    top, face = (185, 195, 225), (80, 110, 160)
    img, _, seg, pose = _figure((30, 30, 30), (30, 30, 30), skirt=False)
    cv2.rectangle(img, (60, 70), (140, 125), top, -1)
    person = seg.astype(np.float32)
    for arm in (((135, 80), (150, 135), (156, 185)), ((65, 80), (50, 135), (44, 185))):
        cv2.polylines(img, [np.array(arm, np.int32)], False, top, 16)
        cv2.polylines(person, [np.array(arm, np.int32)], False, 1.0, 16)
    pose[[13, 14, 15, 16]] = [[150, 135, .99], [50, 135, .99], [156, 185, .99], [44, 185, .99]]
    _draw_face(img, person, face)
    model = GarmentModel.build(img, cv2.GaussianBlur(person, (3, 3), 0), pose)
    assert model is not None
    g = _at_figure_size(model.seg)
    assert g[140:180, 148:160].mean() > 0.9 and g[140:180, 40:52].mean() > 0.9     # both forearms' sleeves
    assert g[90:120, 70:130].mean() > 0.9 and g[140:175, 70:130].mean() > 0.9     # blouse and trousers


def test_a_dark_shirt_between_a_jackets_lapels_is_not_his_hair():
    # his hair and beard are near-black, as is the shirt showing down the
    # middle of his red jacket; hair hangs beside the face, and the shirt is
    # not one piece with the hair on his head
    hair, skin = (25, 22, 20), (150, 170, 220)
    img, _, seg, pose = _figure((40, 40, 200), (120, 60, 20), skirt=False)
    person = seg.astype(np.float32)
    cv2.ellipse(img, (100, 36), (26, 32), 0, 0, 360, hair, -1)
    cv2.ellipse(person, (100, 36), (26, 32), 0, 0, 360, 1.0, -1)
    cv2.ellipse(img, (100, 44), (15, 20), 0, 0, 360, skin, -1)
    cv2.rectangle(img, (92, 56), (108, 70), hair, -1)                  # a beard down to his collar
    cv2.rectangle(person, (92, 56), (108, 70), 1.0, -1)
    cv2.rectangle(img, (90, 70), (110, 185), hair, -1)                 # the shirt between the lapels
    model = GarmentModel.build(img, cv2.GaussianBlur(person, (3, 3), 0), pose)
    assert model is not None
    g = _at_figure_size(model.seg)
    assert g[90:175, 93:107].mean() > 0.9 and g[90:175, 64:86].mean() > 0.9


def test_a_white_shirt_is_not_the_skin_of_a_pale_brightly_lit_face():
    # the face's chroma is faint (a pale face in studio light), so a white
    # shirt sits within its spread; skin keeps its tint, white cloth has none
    rng = np.random.default_rng(3)
    face = np.stack([rng.normal(200, 8, 400), rng.normal(134, 3, 400), rng.normal(136, 3, 400)], axis=1)
    face = np.clip(face, 0, 255).astype(np.uint8)
    lab = np.zeros((2, 2, 3), np.uint8)
    lab[0, 0] = (200, 134, 136)          # her neck, like her face
    lab[0, 1] = (245, 128, 129)          # a white shirt
    lab[1, 0] = (150, 129, 128)          # a grey jacket in shadow
    lab[1, 1] = (160, 136, 139)          # her hand, a little warmer
    ycrcb = cv2.cvtColor(cv2.cvtColor(lab, cv2.COLOR_Lab2BGR), cv2.COLOR_BGR2YCrCb)
    skin = _skin_mask(lab, ycrcb, face)
    assert skin[0, 0] and skin[1, 1]
    assert not skin[0, 1] and not skin[1, 0]


def test_a_photos_outline_is_cut_again_at_a_higher_resolution():
    # the work-size cut sits a few photo pixels inside the cloth's edge; the
    # band cut on the sharper image finds the edge itself
    img = np.full((1000, 800, 3), (150, 150, 150), np.uint8)
    cv2.ellipse(img, (400, 500), (230, 380), 0, 0, 360, (40, 40, 200), -1)
    cloth = np.all(img == (40, 40, 200), axis=-1)
    seg = np.zeros((400, 320), np.uint8)
    cv2.ellipse(seg, (160, 200), (88, 148), 0, 0, 360, 1, -1)           # 4 work px short all round
    fine = refine_outline(img, seg)
    assert fine.shape[1] > seg.shape[1] and fine.shape[1] / fine.shape[0] == 0.8
    size = (fine.shape[1], fine.shape[0])
    cloth = cv2.resize(cloth.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    first = cv2.resize(seg, size, interpolation=cv2.INTER_NEAREST) > 0
    assert iou_of(first, cloth) < 0.95 and iou_of(fine > 0, cloth) > 0.98


def test_the_refined_outline_keeps_the_split_between_parts():
    # a top over a skirt: what the outline gains goes to the nearer part, and
    # neither part takes over what the first cut gave the other
    seg = np.zeros((100, 80), np.uint8)
    seg[20:90, 20:60] = 1
    upper = np.zeros_like(seg)
    upper[20:50, 20:60] = 1
    fine = np.zeros((250, 200), np.uint8)
    fine[45:230, 45:155] = 1                                               # 5 px wider all round
    up = part_of_outline(fine, seg, upper)
    lo = part_of_outline(fine, seg, seg & ~upper)
    assert not (up & lo).any() and ((up | lo) == fine).all()
    assert up[48, 100] and up[100, 47] and lo[228, 100] and lo[200, 152]   # gained edges, by nearness
    assert not up[150:].any() and not lo[:110].any()


def test_the_second_cut_never_takes_her_head():
    # a red hat on a red coat: colour joins them, the head is off limits
    img = np.full((600, 400, 3), (150, 150, 150), np.uint8)
    img[200:560, 100:300] = (40, 40, 200)           # the coat
    img[120:200, 150:250] = (40, 40, 200)           # the hat, right above it
    seg = np.zeros((480, 320), np.uint8)
    seg[160:448, 80:240] = 1                         # the first cut: the coat
    off = np.zeros((480, 320), bool)
    off[90:160, 110:210] = True                      # her head
    # the band reaches 8 px above the coat, into the hat
    assert refine_outline(img, seg)[193:200, 160:240].mean() > 0.5     # without the head: taken
    fine = refine_outline(img, seg, off)
    assert not fine[112:200, 150:250].any() and fine[260:540, 130:270].all()


def test_every_pixel_of_the_refined_outline_goes_to_exactly_one_part():
    # a top stepping out over the trousers leaves pixels the outline gained
    # exactly as near to the one as to the other; each still goes to one only
    seg = np.zeros((60, 40), np.uint8)
    seg[39:44, 21:31] = 1                      # the top's hem
    seg[42:52, 28:35] = 1                      # a trouser leg under its corner
    upper = (seg > 0) & (np.mgrid[0:60, 0:40][0] < 44)
    fine = cv2.dilate(cv2.resize(seg, (60, 90), interpolation=cv2.INTER_NEAREST), np.ones((7, 7), np.uint8))
    up = part_of_outline(fine, seg, upper.astype(np.uint8))
    lo = part_of_outline(fine, seg, (seg > 0) & ~upper)
    assert not (up & lo).any() and ((up | lo) == fine).all()


def test_every_traced_photo_has_a_source_row_to_rebuild_it_from():
    """`python -m tests.garment_parts rebuild` reads PROVENANCE.md's table:
    a truth added without its row could never be measured again."""
    from tests.garment_parts import PARTS_DIR, provenance_rows, specs
    rows = {(r["split"], r["name"]): r for r in provenance_rows()}
    traced = {tuple(s["image"].split("/", 1)) for s in specs("all")}
    assert len(traced) == len(list(PARTS_DIR.glob("*.json")))
    assert traced == set(rows)
    for r in rows.values():
        assert r["repo"].count("/") == 1 and len(r["commit"]) == 40, r
        assert len(r["blob"]) == 40 or r["path"].endswith(")"), r


def test_the_evaluation_can_show_a_photo_as_another_camera_or_filter_would():
    """`--tone` changes colours, never pixels' places: a cool white balance
    moves blue up and red down, a dark tone curve takes mid-grey down, JPEG
    changes a fine pattern a little, and no tone leaves the photo as it was."""
    from tests.garment_parts import TONES, toned
    rng = np.random.default_rng(0)
    img = rng.integers(40, 216, (48, 32, 3), dtype=np.uint8)
    assert toned(img, None) is img
    cool = toned(img, "cool").astype(int)
    assert cool[..., 0].mean() > img[..., 0].mean() + 5 and cool[..., 2].mean() < img[..., 2].mean() - 5
    warm = toned(img, "warm").astype(int)
    assert warm[..., 2].mean() > img[..., 2].mean() + 5 and warm[..., 0].mean() < img[..., 0].mean() - 5
    grey = np.full((4, 4, 3), 128, np.uint8)
    assert 85 <= toned(grey, "dark")[0, 0, 0] <= 95 and 155 <= toned(grey, "bright")[0, 0, 0] <= 165
    for tone in TONES:
        out = toned(img, tone)
        assert out.shape == img.shape and out.dtype == np.uint8 and (out != img).any(), tone
