"""Engagement before action (issue 13): only a shopper facing the mirror with
her hand raised into the zone in front of her, holding a gesture deliberately,
makes the mirror act. Synthetic hands (tests/handmodel.py) and bodies; the
real clip through `mirror replay` at the end."""

import json
import math
import os
import select
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from mirror.core import config
from tests.handmodel import CURLED, STRAIGHT, hand
from vision import engagement as E
from vision import gestures as G
from vision.hands import Hand
from vision.interaction import HandInput

W = H = 1000                       # frame size: one frame-width unit is 1000 px
# facing the camera, torso centred: shoulders 0.2 wide at y 0.3, hips at 0.6
BODY = E.Body(cx=0.5, nose_y=0.2, shoulder_y=0.3, hip_y=0.6, shoulder_w=0.2, facing=True, t=0.0)
THUMBS_UP = dict(fingers=CURLED, thumb="up")
OPEN_PALM = dict(fingers=STRAIGHT, thumb="out")
CHEST = (0.45, 0.38)               # in front of her chest, inside the zone
AT_HER_SIDE = (0.68, 0.66)         # hanging beside her hip


def _hand(shape: dict, at: tuple[float, float], rotate: float = 0.0, seed: int = 0) -> Hand:
    pts = hand(shape["fingers"], shape["thumb"], rotate=rotate, scale=45.0, noise=0.004, seed=seed)
    centre = pts[[0, 5, 9, 13, 17], :2].mean(0)
    pts[:, 0] += at[0] * W - centre[0]
    pts[:, 1] += at[1] * W - centre[1]
    return Hand(pts, "Right", 0.95, (W, H))


def _gcfg(**changes):
    return config.load(None, env={}).replace("gestures", **changes).gestures


def _run(hi: HandInput, make, body, seconds: float, fps: float = 30.0) -> list[tuple[float, str, dict]]:
    """Feed `make(i)` hands for `seconds` of frame time; the events with their times."""
    out = []
    for i in range(round(seconds * fps)):
        t = i / fps
        out += [(t, e.name, e.data) for e in hi.update([make(i)], t, body)]
    return out


def _fired(events) -> list[tuple[float, str]]:
    return [(t, d["gesture"]) for t, name, d in events if name == "gesture.fired"]


def test_a_thumbs_up_in_the_zone_fires_after_the_hold_time_and_shows_it_is_listening():
    cfg = _gcfg(hold_s=0.5)
    hi = HandInput(cfg)
    events = _run(hi, lambda i: _hand(THUMBS_UP, CHEST, seed=i), BODY, 2.0)
    fired = _fired(events)
    assert [g for _, g in fired] == ["thumbs_up"]
    assert 0.5 <= fired[0][0] < 0.6                # held deliberately: not after 4 frames, but after hold_s
    assert hi.engaged


@pytest.mark.parametrize("fps", [10.0, 30.0, 60.0])
def test_the_hold_is_in_seconds_whatever_the_frame_rate(fps):
    hi = HandInput(_gcfg(hold_s=0.8))
    fired = _fired(_run(hi, lambda i: _hand(THUMBS_UP, CHEST, seed=i), BODY, 2.0, fps))
    assert len(fired) == 1 and 0.8 <= fired[0][0] <= 0.8 + 1.0 / fps + 1e-9


def test_the_same_hand_outside_the_zone_does_nothing_and_the_cursor_says_so():
    hi = HandInput(_gcfg())
    for where in (AT_HER_SIDE, (0.5, 0.72), (0.85, 0.38), (0.5, -0.05)):   # side, below waist, far side, above
        hi = HandInput(_gcfg())
        assert _fired(_run(hi, lambda i: _hand(THUMBS_UP, where, seed=i), BODY, 2.0)) == [], where
        assert not hi.engaged and hi.hold_progress == 0.0


def test_nobody_facing_the_mirror_means_no_action():
    turned = E.Body(**{**BODY.__dict__, "facing": False})
    for body in (turned, None):
        hi = HandInput(_gcfg())
        assert _fired(_run(hi, lambda i: _hand(THUMBS_UP, CHEST, seed=i), body, 2.0)) == []


def test_a_relaxed_open_hand_hanging_down_is_not_help_but_a_raised_one_is():
    hanging = lambda i: _hand(OPEN_PALM, AT_HER_SIDE, rotate=180, seed=i)
    assert _fired(_run(HandInput(_gcfg()), hanging, BODY, 2.0)) == []
    # even in front of her, fingers pointing down are a hand at rest
    down_in_front = lambda i: _hand(OPEN_PALM, CHEST, rotate=180, seed=i)
    assert _fired(_run(HandInput(_gcfg()), down_in_front, BODY, 2.0)) == []
    raised = lambda i: _hand(OPEN_PALM, CHEST, seed=i)
    assert [g for _, g in _fired(_run(HandInput(_gcfg()), raised, BODY, 2.0))] == ["open_palm"]


def test_a_shape_carried_around_while_talking_is_not_held():
    # an open palm drifting steadily in front of her chest, slower than a swipe or a reach
    def talking(i):
        a = i / 30 * 2.0
        return _hand(OPEN_PALM, (0.5 + 0.05 * math.sin(a), 0.4 + 0.05 * math.cos(a)), seed=i)
    assert _fired(_run(HandInput(_gcfg(hold_s=0.5)), talking, BODY, 6.0)) == []


def test_circles_count_only_from_an_engaged_hand():
    def circling(centre):
        def make(i):
            a = i / 30 * 2 * math.pi          # one turn a second, radius 0.06
            return _hand(dict(fingers={**CURLED, "index": 0.0}, thumb="tucked"),
                         (centre[0] + 0.06 * math.cos(a), centre[1] + 0.06 * math.sin(a)), seed=i)
        return make
    low = _run(HandInput(_gcfg()), circling((0.62, 0.75)), BODY, 2.0)
    high = _run(HandInput(_gcfg()), circling((0.5, 0.35)), BODY, 2.0)
    assert not [e for e in low if e[1] == "motion.circle"]
    assert [e for e in high if e[1] == "motion.circle"]


def test_buttons_need_a_raised_hand_of_someone_facing_the_mirror():
    pointing = dict(fingers={**CURLED, "index": 0.0}, thumb="tucked")
    cfg = _gcfg()

    def presses(at, body):
        hi = HandInput(cfg, control_at=lambda x, y: "next_color")
        return [d for _, name, d in _run(hi, lambda i: _hand(pointing, at, seed=i), body, cfg.dwell_s + 1.0)
                if name == "cursor.dwell"]
    # a raised hand may reach past the zone's sides to a button at the screen's edge
    assert len(presses((0.9, 0.35), BODY)) == 1
    assert presses((0.55, 0.72), BODY) == []                       # below her waist
    assert presses((0.9, 0.35), E.Body(**{**BODY.__dict__, "facing": False})) == []


def test_without_a_body_model_there_is_no_gate():
    # photos and hand-only callers: the classifier and the hold decide alone
    hi = HandInput(_gcfg())
    fired = []
    for i in range(60):
        fired += [e.data["gesture"] for e in hi.update([_hand(THUMBS_UP, AT_HER_SIDE, seed=i)], i / 30)
                  if e.name == "gesture.fired"]
    assert fired == ["thumbs_up"]


def test_the_zone_is_configurable():
    # a zone down to the hips (1.0) takes the hand at her waist that the default (0.8) leaves out
    waist = (0.5, 0.58)
    assert not E.in_zone(BODY, _hand(THUMBS_UP, waist).points, (W, H), E.Zone.from_config(_gcfg()))
    assert E.in_zone(BODY, _hand(THUMBS_UP, waist).points, (W, H), E.Zone.from_config(_gcfg(zone_bottom=1.0)))
    wide = (0.5 + 0.25, 0.38)
    assert not E.in_zone(BODY, _hand(THUMBS_UP, wide).points, (W, H), E.Zone.from_config(_gcfg()))
    assert E.in_zone(BODY, _hand(THUMBS_UP, wide).points, (W, H), E.Zone.from_config(_gcfg(zone_width=3.0)))
    with pytest.raises(config.ConfigError):
        _gcfg(zone_width=0.5)


def _pose(nose_x: float, shoulders=((0.4, 0.3), (0.6, 0.3)), hips=((0.42, 0.6), (0.58, 0.6)), vis=1.0):
    p = np.zeros((33, 3), np.float32)
    p[:, 2] = vis
    p[E.NOSE] = (nose_x * W, 0.2 * W, vis)
    p[E.L_EYE], p[E.R_EYE] = (nose_x * W + 15, 0.19 * W, vis), (nose_x * W - 15, 0.19 * W, vis)
    (p[E.L_SHOULDER, :2], p[E.R_SHOULDER, :2]) = np.array(shoulders) * W
    (p[E.L_HIP, :2], p[E.R_HIP, :2]) = np.array(hips) * W
    return p


def test_body_from_pose_knows_facing_from_turned_and_nobody():
    b = E.body_from_pose(_pose(0.5), (W, H), 3.0)
    assert b.facing and b.t == 3.0 and abs(b.cx - 0.5) < 1e-6 and abs(b.shoulder_w - 0.2) < 1e-6
    assert abs(b.hip_y - 0.6) < 1e-6
    assert not E.body_from_pose(_pose(0.62), (W, H), 0).facing                 # head turned past a shoulder
    side_on = _pose(0.5, shoulders=((0.47, 0.3), (0.53, 0.3)))                 # shoulders overlap: sideways
    assert not E.body_from_pose(side_on, (W, H), 0).facing
    assert E.body_from_pose(_pose(0.5, vis=0.1), (W, H), 0) is None
    assert E.body_from_pose(None, (W, H), 0) is None


@pytest.mark.parametrize("rotate", [-15, 0, 15])
def test_victory_is_two_fingers_up_only(rotate):
    v = dict(CURLED, index=0.0, middle=0.0)
    assert G.classify(hand(v, "tucked", rotate=rotate)).gesture == "victory"
    assert G.classify(hand(v, "tucked", rotate=180 + rotate)).gesture != "victory"          # inverted V
    assert G.classify(hand(dict(v, ring=0.0), "tucked", rotate=rotate)).gesture != "victory"   # three fingers
    assert G.classify(hand(v, "out", rotate=rotate)).gesture != "victory"                   # thumb out: three


def test_replay_json_on_the_thumbs_up_clip(media):
    """The real kiosk in clip time: looped to 10 s, her thumbs-up saves the look once."""
    clip = media / "clips" / "thumbs_up_720p.mp4"
    r = subprocess.run([sys.executable, "-m", "mirror", "replay", str(clip), "--seconds", "10", "--json"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    assert set(result) == {"seconds", "frames", "actions", "actions_per_min"}
    assert result["frames"] == 250 and result["seconds"] == 10.0
    assert [(a["action"], a["source"]) for a in result["actions"]] == [("confirm", "gesture:thumbs_up")]
    assert 3.0 < result["actions"][0]["t"] < 7.8
    assert result["actions_per_min"] == 6.0
    assert any("confirm" in line and "gesture:thumbs_up" in line for line in lines[:-1])    # printed as it fired
    assert "; 1 action, 6.00 a minute" in r.stderr and "truncated" not in r.stderr


@pytest.mark.parametrize("args,says", [(["nope.mp4"], "not found"), (["{clip}", "--seconds", "0"], "--seconds"),
                                       (["{clip}", "--seconds", "nan"], "--seconds"), (["{bad}"], "cannot decode"),
                                       (["{folder}"], "is a directory; pass a video file"),
                                       (["{photo}"], "is an image, not a video; pass a clip"),
                                       (["{fifo}"], "is not a regular file; pass a video file")])
def test_replay_bad_input_is_one_line_exit_2(media, tmp_path, args, says):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    os.mkfifo(tmp_path / "pipe.mp4")           # OpenCV would wait on it for a writer for ever
    args = [a.format(clip=media / "clips" / "thumbs_up_720p.mp4", bad=bad, folder=tmp_path,
                     photo=media / "images" / "victory.jpg", fifo=tmp_path / "pipe.mp4") for a in args]
    r = subprocess.run([sys.executable, "-m", "mirror", "replay", *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().count("\n") == 0 and says in r.stderr and "Traceback" not in r.stderr


def _replay(*args: str, timeout: float = 120) -> tuple[subprocess.CompletedProcess, dict]:
    """`mirror replay ... --json` that succeeded, and its result."""
    r = subprocess.run([sys.executable, "-m", "mirror", "replay", *args, "--json"], capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    return r, json.loads(r.stdout.strip().splitlines()[-1])


def test_replay_stops_on_sigterm_with_143_and_no_result(media):
    """As systemd or a script stops it: promptly, one line, no result claimed (SDL's
    own SIGTERM handler used to swallow it and the replay ran to its end)."""
    clip = media / "clips" / "thumbs_up_720p.mp4"
    p = subprocess.Popen([sys.executable, "-m", "mirror", "replay", str(clip), "--seconds", "120", "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # the first progress line comes with the first frame, when the kiosk is built
        ready, _, _ = select.select([p.stderr], [], [], 60)
        assert ready, "no progress within 60 s"
        first = p.stderr.readline()
        p.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        out, err = p.communicate(timeout=10)
        took = time.monotonic() - t0
    finally:
        p.kill()
        p.wait()
    assert p.returncode == 143, (p.returncode, first + err)
    assert took < 10 and "Traceback" not in err, err
    said = [ln for ln in err.splitlines() if "SIGTERM" in ln]
    assert len(said) == 1 and "stopped" in said[0], err
    assert not [ln for ln in out.splitlines() if ln.startswith("{")], out        # no result line
    assert "frames, " not in err.split(said[0])[-1]                               # nor a summary after it


def _one_frame_clip(media, path, change=lambda img: img):
    """A 25 fps clip of the thumbs-up clip's first frame, through `change`."""
    import cv2
    cap = cv2.VideoCapture(str(media / "clips" / "thumbs_up_720p.mp4"))
    ok, img = cap.read()
    cap.release()
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (img.shape[1], img.shape[0]))
    w.write(change(img))
    w.release()
    return path


def test_replay_loops_a_one_frame_clip(media, tmp_path):
    one = _one_frame_clip(media, tmp_path / "one.mp4")
    r, result = _replay(str(one))
    assert result["frames"] == 1 and result["seconds"] == 0.04
    assert "one.mp4: 1 frame, " in r.stderr and "0 actions" in r.stderr
    r, result = _replay(str(one), "--seconds", "2")
    assert result["frames"] == 50 and result["seconds"] == 2.0


def test_replay_shorter_than_a_frame_runs_one_frame(media):
    _, result = _replay(str(media / "clips" / "thumbs_up_720p.mp4"), "--seconds", "0.01")
    assert result["frames"] == 1 and result["seconds"] == 0.04


def test_replay_warns_once_about_a_truncated_clip(media, tmp_path):
    data = (media / "clips" / "thumbs_up_720p.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 3])
    r, result = _replay(str(cut))
    warnings = [ln for ln in r.stderr.splitlines() if "truncated" in ln]
    assert len(warnings) == 1, r.stderr
    assert f"only {result['frames']} of 195 frames could be decoded" in warnings[0]
    assert 0 < result["frames"] < 150


def test_replay_help_gives_the_bounds_of_seconds():
    r = subprocess.run([sys.executable, "-m", "mirror", "replay", "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    help_seconds = " ".join(r.stdout.split("--seconds S", 2)[2].split())
    assert "above 0" in help_seconds and "86400" in help_seconds, help_seconds


def _hand_with_tip(shape: dict, tip: tuple[float, float], seed: int = 0) -> Hand:
    """The hand moved so its index fingertip is at `tip`."""
    h = _hand(shape, (0.0, 0.0), seed=seed)
    pts = h.points.copy()
    pts[:, 0] += tip[0] * W - pts[8, 0]
    pts[:, 1] += tip[1] * W - pts[8, 1]
    return Hand(pts, "Right", 0.95, (W, H))


def test_a_finger_at_her_lips_is_not_pointing_at_the_mirror():
    """"Shh": an index finger held to her mouth is neither a gesture nor a press."""
    pointing = dict(fingers={**CURLED, "index": 0.0}, thumb="tucked")
    body = E.Body(**{**BODY.__dict__, "mouth": (0.52, 0.225)})
    lips = (0.52, 0.23)
    assert E.on_lips(body, _hand_with_tip(pointing, lips).points, (W, H))
    hi = HandInput(_gcfg(hold_s=0.5), control_at=lambda x, y: "next_color")
    events = _run(hi, lambda i: _hand_with_tip(pointing, lips, seed=i), body, 2.0)
    assert _fired(events) == [] and not [e for e in events if e[1] == "cursor.dwell"]
    # the same finger raised in front of her chest, or beside her head, still points
    for tip in ((0.45, 0.3), (0.52 + 0.06, 0.15)):
        assert not E.on_lips(body, _hand_with_tip(pointing, tip).points, (W, H)), tip
    fired = _fired(_run(HandInput(_gcfg(hold_s=0.5)), lambda i: _hand_with_tip(pointing, (0.45, 0.3), seed=i),
                        body, 2.0))
    assert [g for _, g in fired] == ["pointing_up"]
    # without her mouth in the pose there is no such rule
    assert not E.on_lips(BODY, _hand_with_tip(pointing, lips).points, (W, H))


def test_replay_into_a_closed_pipe_ends_quietly_with_141(media):
    """`mirror replay CLIP | head -1`: the bus used to log the broken pipe with a
    traceback, and the replay ran on to its end and exited 0."""
    clip = media / "clips" / "thumbs_up_720p.mp4"
    p = subprocess.Popen([sys.executable, "-m", "mirror", "replay", str(clip), "--seconds", "14"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = p.stdout.readline()                # the thumbs-up at 4.48 s
        p.stdout.close()                           # ... and the reader goes (the next one comes at 12.28 s)
        _, err = p.communicate(timeout=120)
    finally:
        p.kill()
        p.wait()
    assert "gesture:thumbs_up" in first
    assert p.returncode == 141, (p.returncode, err)
    assert "Traceback" not in err and "ERROR" not in err, err


def test_replay_warns_that_a_grey_clip_says_little(media, tmp_path):
    import cv2
    grey = _one_frame_clip(media, tmp_path / "grey.mp4",
                           lambda img: cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR))
    r, _ = _replay(str(grey))
    assert "grey.mp4 has no colour" in r.stderr, r.stderr
    r, _ = _replay(str(media / "clips" / "thumbs_up_720p.mp4"), "--seconds", "0.1")
    assert "no colour" not in r.stderr, r.stderr


def test_a_clip_is_grey_only_if_its_scenes_are_grey_not_because_it_fades_in():
    from mirror.app.replay import colourless
    black = np.zeros((64, 64, 3), np.uint8)
    scene = np.dstack([np.tile(np.linspace(20, 230, 64, dtype=np.uint8), (64, 1))] * 3)
    coloured = scene.copy()
    coloured[20:40, 20:40] = (40, 60, 200)
    assert colourless([black, scene])
    assert not colourless([black, coloured]) and not colourless([black]) and not colourless([])


def test_replay_progress_goes_past_an_estimated_total_without_a_line_per_frame(capsys):
    from mirror.app.bench import Progress
    p = Progress("replay x", 3, True)
    for i in range(1, 8):
        p.tick(i)
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["replay x: 1/3 frames" + lines[0].split("frames", 1)[1],
                     "replay x: 3/3 frames" + lines[1].split("frames", 1)[1]], lines
