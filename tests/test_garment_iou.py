"""Garment masks from `mirror segment` against hand-drawn masks (tests/data/garment_truth)."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

TRUTH = Path(__file__).parent / "data" / "garment_truth"
CASES = sorted(p.stem for p in TRUTH.glob("*.json"))


def truth_mask(media: Path, spec: dict, shape: tuple[int, int]) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    if "start_from" in spec:
        m[cv2.imread(str(media / spec["start_from"]))[..., 0] > 127] = 1
    for poly in spec.get("garment", []):
        cv2.fillPoly(m, [np.array(poly, np.int32)], 1)
    for poly in spec.get("not_garment", []):
        cv2.fillPoly(m, [np.array(poly, np.int32)], 0)
    return m > 0


def iou_of(mine: np.ndarray, want: np.ndarray) -> float:
    return float((mine & want).sum() / (mine | want).sum())


def test_there_are_hand_drawn_masks():
    assert len(CASES) >= 3


@pytest.mark.parametrize("name", CASES)
def test_segment_cli_iou_against_hand_drawn_mask(name, media, tmp_path):
    spec = json.loads((TRUTH / f"{name}.json").read_text())
    image = media / spec["image"]
    out = tmp_path / "mask.png"
    r = subprocess.run([sys.executable, "-m", "mirror", "segment", str(image), "--out", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    got = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    img = cv2.imread(str(image))
    assert got.ndim == 2 and got.dtype == np.uint8 and got.shape == img.shape[:2]
    want = truth_mask(media, spec, got.shape)
    assert 0.05 < want.mean() < 0.9          # the drawing itself is sane
    mine = got >= 128
    iou = iou_of(mine, want)
    # The brief's bar is 0.75 on unseen photos; these were tuned on, so hold them higher.
    assert iou >= 0.85, f"{name}: garment IoU {iou:.3f}"
    # Her face is never recoloured, not even its edge next to a sleeve.
    face = np.zeros(got.shape, np.uint8)
    cv2.fillPoly(face, [np.array(spec["face"], np.int32)], 1)
    assert (got[face > 0] > 25).mean() < 0.005, f"{name}: garment mask reaches into the face"


@pytest.mark.parametrize("name", CASES)
def test_without_pose_the_face_still_places_the_garment(name, media, photo_segmenter, monkeypatch):
    """Pose can miss a person the face detector finds (it missed two_hands_raised
    until the picture was padded); the face-based layout must still hold the bar."""
    spec = json.loads((TRUTH / f"{name}.json").read_text())
    img = cv2.imread(str(media / spec["image"]))
    monkeypatch.setattr(photo_segmenter.pose, "process", lambda bgr: None)
    mine = photo_segmenter.garment(img) >= 0.5
    want = truth_mask(media, spec, mine.shape)
    iou = iou_of(mine, want)
    assert iou >= 0.75, f"{name}: garment IoU without pose {iou:.3f}"


@pytest.mark.parametrize("name", CASES)
def test_a_person_further_away_is_segmented_as_well(name, media, photo_segmenter):
    """The photo on a canvas three times its width and height, filled with the
    colour of its top edge (she is the same, the room around her bigger). The
    careful path must then work on a crop around her, not on the few hundred
    pixels she would get at the models' input sizes."""
    spec = json.loads((TRUTH / f"{name}.json").read_text())
    img = cv2.imread(str(media / spec["image"]))
    h, w = img.shape[:2]
    fill = [int(v) for v in np.median(img[:10].reshape(-1, 3), 0)]
    far = cv2.copyMakeBorder(img, 2 * h, 0, w, w, cv2.BORDER_CONSTANT, value=fill)
    want = np.zeros(far.shape[:2], bool)
    want[2 * h:, w:2 * w] = truth_mask(media, spec, (h, w))
    mine = photo_segmenter.garment(far) >= 0.5
    iou = iou_of(mine, want)
    assert iou >= 0.85, f"{name} further away: garment IoU {iou:.3f}"


def _small_in_a_tall_frame(media: Path) -> tuple[np.ndarray, np.ndarray]:
    """two_hands_raised at half size at the foot of a frame of its own backdrop
    as tall as the photo: she is a narrow figure in a tall picture, as a
    standing shopper is. Returns the picture and her top's truth in it."""
    spec = json.loads((TRUTH / "two_hands_raised.json").read_text())
    img = cv2.imread(str(media / spec["image"]))
    want = truth_mask(media, spec, img.shape[:2])
    small = cv2.resize(img, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    h, w = small.shape[:2]
    frame = np.zeros((img.shape[0], w, 3), np.uint8) + small[5, 5]
    frame[-h:] = small
    truth = np.zeros(frame.shape[:2], bool)
    truth[-h:] = cv2.resize(want.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
    return frame, truth


def test_a_narrow_figure_is_found_by_running_the_person_model_on_halves(media, photo_segmenter):
    """At the person model's 256 px a narrow figure is thin and the model loses
    most of her; run again on the frame's top and bottom 60%, she is found."""
    frame, truth = _small_in_a_tall_frame(media)
    person = photo_segmenter.person
    shape = (frame.shape[1], frame.shape[0])
    once = cv2.resize(person.process(frame), shape) > 0.5
    halves = cv2.resize(person.process(frame, halves=True), shape) > 0.5
    assert (once & truth).sum() < 0.5 * truth.sum()
    assert (halves & truth).sum() > 0.9 * truth.sum()
    assert (once & ~halves).sum() == 0                      # the halves only add


def test_a_close_up_is_not_run_in_halves(media, photo_segmenter):
    """She fills half of a close-up; halves would add only the wall beside her."""
    img = cv2.imread(str(media / "images" / "two_hands_raised.jpg"))
    person = photo_segmenter.person
    assert np.array_equal(person.process(img), person.process(img, halves=True))
