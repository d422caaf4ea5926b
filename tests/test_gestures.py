
import pytest

from tests.handmodel import CURLED, STRAIGHT, hand
from vision import gestures as G


def name(points):
    return G.classify(points).gesture


@pytest.mark.parametrize("noise_seed", range(5))
def test_vocabulary_from_synthetic_hands(noise_seed):
    kw = dict(noise=0.015, seed=noise_seed)
    assert name(hand(STRAIGHT, "out", **kw)) == "open_palm"
    assert name(hand(CURLED, "tucked", **kw)) == "fist"
    assert name(hand(dict(CURLED, index=0.0), "tucked", **kw)) == "pointing_up"
    assert name(hand(dict(CURLED, index=0.0, middle=0.0), "tucked", **kw)) == "victory"
    assert name(hand(CURLED, "up", **kw)) == "thumbs_up"
    assert name(hand(CURLED, "up", rotate=180, **kw)) == "thumbs_down"
    assert name(hand(dict(CURLED, index=0.45), "touch_index", **kw)) == "pinch"


@pytest.mark.parametrize("rotate", [-20, 0, 20])
def test_shapes_outside_the_vocabulary_are_none(rotate):
    horns = hand(dict(index=0.0, middle=1.0, ring=1.0, pinky=0.0), "tucked", rotate=rotate)
    call_me = hand(dict(index=1.0, middle=1.0, ring=1.0, pinky=0.0), "out", rotate=rotate)
    half_open = hand(dict(index=0.5, middle=0.5, ring=0.5, pinky=0.5), "tucked", rotate=rotate)
    for shape in (horns, call_me, half_open):
        assert name(shape) == "none"


@pytest.mark.parametrize("noise_seed", range(3))
def test_thumbs_up_toward_the_camera_with_a_foreshortened_index(noise_seed):
    # the index seen end-on reads half-curled; the other three are clearly curled
    shape = hand(dict(CURLED, index=0.47), "up", noise=0.01, seed=noise_seed)
    assert name(shape) == "thumbs_up"


def test_relaxed_hand_with_thumb_resting_on_the_index_is_not_a_pinch():
    relaxed = hand(dict(index=0.45, middle=0.5, ring=0.55, pinky=0.45), "touch_index")
    assert name(relaxed) == "none"


def test_score_is_a_probability():
    c = G.classify(hand(STRAIGHT, "out"))
    assert 0.6 <= c.score <= 1.0


def test_filter_needs_hold_then_cools_down_and_rearms_on_release():
    f = G.GestureFilter(hold_frames=3, cooldown_s=1.0)
    up = G.Classification("thumbs_up", 0.9)
    none = G.Classification("none", 0.9)
    assert [f.update(up, t * 0.03) for t in range(3)] == [None, None, "thumbs_up"]
    # held on: never fires again
    assert all(f.update(up, 0.1 + t * 0.03) is None for t in range(50))
    # a one-frame dropout does not re-arm it
    f.update(none, 1.7)
    assert [f.update(up, 1.8 + t * 0.03) for t in range(4)] == [None] * 4
    # a real release does, and after the cooldown it fires again
    for t in range(4):
        f.update(none, 2.0 + t * 0.03)
    assert [f.update(up, 2.2 + t * 0.03) for t in range(3)] == [None, None, "thumbs_up"]


def test_filter_ignores_low_scores():
    f = G.GestureFilter(hold_frames=2, min_score=0.7)
    weak = G.Classification("fist", 0.65)
    assert all(f.update(weak, t * 0.03) is None for t in range(10))


def test_filter_moving_hand_neither_fires_nor_releases():
    f = G.GestureFilter(hold_frames=3, cooldown_s=0.5)
    up = G.Classification("thumbs_up", 0.9)
    palm = G.Classification("open_palm", 0.9)
    assert [f.update(up, t * 0.03) for t in range(3)] == [None, None, "thumbs_up"]
    # she brings the thumbs-up toward the mirror: moving, same gesture, long after the cooldown
    assert all(f.update(up, 1.0 + t * 0.03, moving=True) is None for t in range(20))
    assert all(f.update(up, 2.0 + t * 0.03) is None for t in range(10))      # still not a new press
    # an open palm that swept in fires only after it has held still for the hold time
    assert all(f.update(palm, 3.0 + t * 0.03, moving=True) is None for t in range(10))
    assert [f.update(palm, 3.5 + t * 0.03) for t in range(3)] == [None, None, "open_palm"]
