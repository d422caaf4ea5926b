"""Which of several people is the shopper (issue 13): the rule on drawn poses,
and the photo path on two real people side by side with the real models."""

import cv2
import numpy as np
import pytest

import vision.photo_segmenter as photo_path
from vision.person import PersonSegmenter, PoseEstimator
from vision.shopper import (BODY_MIN, SIZE_SHARE, choose, kept_her, only_her, others_beside, people, seated,
                            someone_else, torso)

# --- the rule, on drawn poses ----------------------------------------------------------------

WIDTH, HEIGHT = 1000, 1000


def _pose(cx: float, torso_len: float = 200, knee_drop: float | None = 0.7, top: float = 100):
    """Shoulders, hips and (unless `knee_drop` is None) knees of a person whose
    torso's middle is at x `cx`; knees `knee_drop` torso lengths below her hips."""
    p = np.zeros((33, 3), np.float32)
    half = 0.25 * torso_len
    hip_y = top + torso_len
    for i, x, y in ((11, cx + half, top), (12, cx - half, top), (23, cx + 0.8 * half, hip_y),
                    (24, cx - 0.8 * half, hip_y)):
        p[i] = (x, y, 0.99)
    if knee_drop is not None:
        p[25] = (cx + half, hip_y + knee_drop * torso_len, 0.95)
        p[26] = (cx - half, hip_y + knee_drop * torso_len, 0.95)
    return p


def test_of_two_people_standing_she_is_the_one_nearer_the_middle():
    friend, her = _pose(820, torso_len=240), _pose(560, torso_len=200)
    assert choose([friend, her], (WIDTH, HEIGHT)) == 1
    assert choose([her, friend], (WIDTH, HEIGHT)) == 0


def test_a_smaller_person_further_back_at_the_middle_is_not_her():
    pedestrian = _pose(500, torso_len=SIZE_SHARE * 200 - 10)
    her = _pose(300, torso_len=200)
    assert choose([pedestrian, her], (WIDTH, HEIGHT)) == 1


def test_someone_sitting_at_the_middle_is_not_her_but_someone_alone_sitting_is():
    on_the_bench = _pose(520, knee_drop=0.0)
    her = _pose(250)
    assert seated(on_the_bench) and not seated(her)
    assert choose([on_the_bench, her], (WIDTH, HEIGHT)) == 1
    assert choose([on_the_bench, _pose(900, knee_drop=-0.1)], (WIDTH, HEIGHT)) == 0


def test_unseen_knees_say_nothing_about_sitting():
    waist_up = _pose(500, knee_drop=None)
    assert not seated(waist_up)
    assert torso(waist_up) == pytest.approx((500, 200))


def test_with_her_hips_out_of_view_her_shoulders_tell_her_size():
    # pose guesses hips out of view, often far off (here a torso of 80 px for
    # a man as big as the friend beside him)
    waist_up = _pose(500, torso_len=80)
    waist_up[11, 0], waist_up[12, 0] = 550, 450     # shoulders 100 px apart
    waist_up[[23, 24], 2] = 0.1
    waist_up[[25, 26], 2] = 0.0
    friend = _pose(150, torso_len=200)
    x, length = torso(waist_up)
    assert x == pytest.approx(500) and length == pytest.approx(1.6 * 100)
    assert not seated(waist_up)
    assert choose([friend, waist_up], (WIDTH, HEIGHT)) == 1


def test_hips_guessed_short_do_not_make_her_look_further_back():
    # arms crossed over her hips: pose sees "hips" at 90 px below shoulders 200 px
    # apart, where her shoulders say a torso of 320 px; the friend's is 300
    crossed = _pose(500, torso_len=90)
    crossed[11, 0], crossed[12, 0] = 600, 400
    crossed[[25, 26], 1] = 900      # her knees well below
    friend = _pose(150, torso_len=300)
    assert torso(crossed)[1] == pytest.approx(1.6 * 200)
    assert choose([friend, crossed], (WIDTH, HEIGHT)) == 1


def test_points_outside_the_picture_are_not_seen():
    # pose guesses hips and knees beyond the frame's bottom edge at full
    # visibility; seen, they would make her seated
    low = _pose(500, torso_len=200, top=800)       # hips at y 1000
    low[[25, 26], 1] = 1010
    friend = _pose(150, torso_len=200)
    assert choose([friend, low], (WIDTH, 1100)) == 0     # in the picture: she sits
    assert choose([friend, low], (WIDTH, 1000)) == 1     # beyond its edge: unseen, her shoulders tell


def test_no_one_else_without_a_person_mask_outside_her():
    shape = (200, 300)
    hers = _body(shape, 20, 80) > 0
    assert not someone_else(np.zeros(shape, np.float32), hers, hers)
    assert someone_else(np.maximum(_body(shape, 20, 80), _body(shape, 200, 260)), hers, hers)


def test_the_kiosk_looks_for_others_only_past_a_person_whose_face_and_shoulders_are_in_view():
    shape = (200, 300)
    person = np.maximum(_body(shape, 20, 80), _body(shape, 200, 260))
    tracked = _pose(50, torso_len=80, top=40)
    tracked[0] = (50, 20, 0.99)
    assert others_beside(tracked, _body(shape, 20, 80), person)
    off = tracked.copy()
    off[[11, 12], 0] -= 100           # shoulders beyond the left edge, at full visibility
    assert not others_beside(off, _body(shape, 20, 80), person)
    assert not others_beside(tracked, _body(shape, 20, 80), np.zeros(shape, np.float32))


class _ScriptedPose:
    """Stands in for PoseEstimator in `people`: its answers, in turn."""
    def __init__(self, answers):
        self.answers = list(answers)

    def landmarks_and_body(self, bgr):
        return self.answers.pop(0) if self.answers else (None, None)


def _body(shape, x0, x1, y0=20, y1=190):
    b = np.zeros(shape, np.float32)
    b[y0:y1, x0:x1] = 1.0
    return b


def test_a_small_or_shoulderless_body_in_the_painted_patch_is_no_person():
    shape = (200, 300)
    person = np.maximum(_body(shape, 20, 80), _body(shape, 200, 260))
    first, second = _pose(50, torso_len=80, top=40), _pose(230, torso_len=80, top=40)
    phantom = _body(shape, 120, 126, 100, 110)
    assert phantom.sum() < BODY_MIN * _body(shape, 20, 80).sum()
    found = people(np.zeros(shape + (3,), np.uint8), person,
                   _ScriptedPose([(first, _body(shape, 20, 80)), (second, phantom)]))
    assert len(found) == 1
    shoulderless = second.copy()
    shoulderless[[11, 12], 2] = 0.15
    found = people(np.zeros(shape + (3,), np.uint8), person,
                   _ScriptedPose([(first, _body(shape, 20, 80)), (shoulderless, _body(shape, 200, 260))]))
    assert len(found) == 1
    found = people(np.zeros(shape + (3,), np.uint8), person,
                   _ScriptedPose([(first, _body(shape, 20, 80)), (second, _body(shape, 200, 260))]))
    assert len(found) == 2


def test_the_painted_photo_is_used_only_while_the_person_model_still_finds_her():
    hers = _body((200, 300), 20, 80) > 0
    before = _body((200, 300), 20, 80)
    assert kept_her(before, before * 0.9, hers)
    half_lost = before.copy()
    half_lost[:120] = 0
    assert not kept_her(before, half_lost, hers)


# --- the photo path, on two real people side by side -------------------------------------------

H = 600


def _two_people(media):
    """A woman in a light-blue shirt at the left edge, nearer the camera (bigger
    in the frame), and a man in a dark suit beside her, nearer the middle: the
    photo a friend leaning in beside the shopper makes. Returns the photo and
    the columns of each."""
    def scaled(name, h):
        img = cv2.imread(str(media / "images" / name))
        return cv2.resize(img, (round(img.shape[1] * h / img.shape[0]), h), interpolation=cv2.INTER_AREA)
    friend, her = scaled("pointing_up.jpg", H), scaled("portrait_suit.jpg", 560)
    photo = np.full((H, 1400, 3), 200, np.uint8)
    photo[:, :friend.shape[1]] = friend
    x = friend.shape[1]
    photo[H - her.shape[0]:, x:x + her.shape[1]] = her
    return photo, slice(0, x), slice(x, x + her.shape[1])


def test_pose_alone_takes_the_bigger_friend_so_the_photo_is_searched_again(media):
    photo, friend_cols, her_cols = _two_people(media)
    person = PersonSegmenter(256).process(photo)
    found = people(photo, person, PoseEstimator(static=True, body_mask=True))
    xs = [torso(p)[0] for p, _ in found]
    assert len(found) == 2
    assert friend_cols.start <= xs[0] < friend_cols.stop     # pose's first answer is the friend
    assert her_cols.start <= xs[1] < her_cols.stop


def test_only_the_shopper_at_the_middle_is_cut_not_the_friend_beside_her(media, photo_segmenter, monkeypatch):
    photo, friend_cols, her_cols = _two_people(media)
    suit = (slice(H - 300, H - 40), slice(her_cols.start + 60, her_cols.stop - 60))   # his jacket
    shirt = (slice(H - 200, H - 20), slice(friend_cols.start + 120, friend_cols.stop - 120))   # her shirt

    matte = photo_segmenter.garment(photo) >= 0.5
    assert matte[suit].mean() > 0.7
    assert matte[:, friend_cols].mean() < 0.01

    # without the search, pose's first answer (the friend) is cut instead
    monkeypatch.setattr(photo_path, "only_her", lambda *args: None)
    matte = photo_segmenter.garment(photo) >= 0.5
    assert matte[shirt].mean() > 0.7
    assert matte[suit].mean() < 0.01


def test_a_photo_of_one_person_is_used_as_it_is(media):
    photo = cv2.imread(str(media / "images" / "portrait_suit.jpg"))
    person = PersonSegmenter(256).process(photo)
    assert only_her(photo, person, PoseEstimator(static=True, body_mask=True)) is None


# --- the kiosk, whose pose follows whoever it found first ---------------------------------------

def _kiosk_on(photo, frames=2):
    from mirror.core import config
    from vision.capture import Frame
    from vision.pipeline import VisionPipeline
    cfg = config.load(None, env={})
    pipe = VisionPipeline(cfg.vision, cfg.depth, parallel=False, background_refresh=False)
    try:
        for i in range(frames):
            # every frame refreshes the garment model: its pose tracks from frame to frame
            pipe._last_refresh = -1e9
            result = pipe.process(Frame(photo, 0.1 * i, i))
        return result
    finally:
        pipe.close()


def test_the_kiosk_recolours_the_shopper_at_the_middle_and_listens_to_her(media, monkeypatch):
    photo, friend_cols, her_cols = _two_people(media)
    result = _kiosk_on(photo)
    s = result.matte.shape[1] / photo.shape[1]
    matte = result.matte >= 0.5
    friend = matte[:, :round(friend_cols.stop * s)]
    her = matte[:, round(her_cols.start * s):round(her_cols.stop * s)]
    assert her.mean() > 0.15 and friend.mean() < 0.01
    # the engagement zone is hers too (frame-width units)
    assert her_cols.start < result.body.cx * photo.shape[1] < her_cols.stop

    # without the search, the tracked pose (the friend, found first) is cut
    import vision.pipeline as kiosk
    monkeypatch.setattr(kiosk, "only_her", lambda *args, **kw: None)
    result = _kiosk_on(photo)
    matte = result.matte >= 0.5
    assert matte[:, :round(friend_cols.stop * s)].mean() > 0.15
    assert matte[:, round(her_cols.start * s):round(her_cols.stop * s)].mean() < 0.01
    assert friend_cols.start <= result.body.cx * photo.shape[1] < friend_cols.stop
