"""`mirror bench-staff` end to end with a few pushes: the shape of its result and sane values.
Its speed targets are measured by running the benchmark (README), not by this test."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.kiosk_proc import ROOT


def test_bench_staff_measures_pushes_to_the_glass_through_the_real_api():
    r = subprocess.run([sys.executable, "-m", "mirror", "bench-staff", "--pushes", "4", "--json"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "bench-staff: 4/4 pushes" in r.stderr                       # progress on stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert {"pushes", "push_to_frame_p50_ms", "push_to_frame_p95_ms", "mirror_fps", "mirror_fps_min"} <= set(out)
    assert out["pushes"] == 4 and out["not_shown"] == 0
    assert 0 < out["push_to_frame_p50_ms"] <= out["push_to_frame_p95_ms"] <= out["push_to_frame_max_ms"] < 3000
    # the console's websocket hears "shown" only after the frame was composed
    assert out["push_to_console_p95_ms"] >= out["push_to_frame_p50_ms"]
    assert 0 < out["mirror_fps_min"] <= out["mirror_fps"] and out["mirror_fps_mean"] > 0


def test_bench_staff_refuses_bad_input_in_one_line():
    r = subprocess.run([sys.executable, "-m", "mirror", "bench-staff", "--pushes", "0"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "mirror: error: --pushes must be at least 1, got 0"]
    r = subprocess.run([sys.executable, "-m", "mirror", "bench-staff", "--video", "/no/such.mp4"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.strip() == "mirror: error: /no/such.mp4: no such clip"
