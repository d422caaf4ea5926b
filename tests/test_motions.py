import math

from vision.motions import CircleTracker, DwellDetector, SwipeDetector


def trace_circle(tracker, turns=1.0, clockwise=True, r=0.1, steps=60, period=1.2, t0=0.0):
    updates = []
    for i in range(int(steps * turns) + 1):
        a = 2 * math.pi * i / steps * (1 if clockwise else -1)
        # y grows downward, so increasing atan2 angle is clockwise on screen
        u = tracker.update(0.5 + r * math.cos(a), 0.5 + r * math.sin(a), t0 + i * period / steps)
        if u:
            updates.append(u)
    return updates


def test_clockwise_circle_gives_positive_angle_of_about_one_turn():
    ups = trace_circle(CircleTracker(min_radius=0.04), turns=1.5)
    assert ups, "circling was never recognised"
    total = ups[-1].total_deg
    # 1.5 turns traced; the tracker needs a few points to find the centre first
    assert 360 < total < 560
    assert all(u.delta_deg > 0 for u in ups)


def test_counter_clockwise_circle_is_negative():
    ups = trace_circle(CircleTracker(min_radius=0.04), turns=1.5, clockwise=False)
    assert ups and ups[-1].total_deg < -360


def test_small_jitter_and_straight_lines_do_not_circle():
    tr = CircleTracker(min_radius=0.04)
    assert not trace_circle(tr, turns=2, r=0.01)
    tr = CircleTracker(min_radius=0.04)
    assert all(tr.update(0.2 + i * 0.01, 0.5, i * 0.03) is None for i in range(60))


def test_swipe_direction_and_threshold():
    sw = SwipeDetector(min_distance=0.25, max_s=0.6)
    got = [sw.update(0.2 + i * 0.05, 0.5, i * 0.03) for i in range(12)]
    hits = [g for g in got if g]
    assert len(hits) == 1 and hits[0].direction == "right"
    sw = SwipeDetector(min_distance=0.25, max_s=0.6)
    slow = [sw.update(0.2 + i * 0.005, 0.5, i * 0.1) for i in range(60)]
    assert not any(slow)


def test_dwell_presses_once():
    d = DwellDetector(dwell_s=1.0, radius=0.03)
    pressed = [d.update(0.5, 0.5, i * 0.1)[1] for i in range(30)]
    assert pressed.count(True) == 1 and pressed.index(True) == 10
