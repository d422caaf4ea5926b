import subprocess
import sys
import tomllib

import pytest

from mirror.core import config


def test_defaults_validate_and_documented_file_matches_schema():
    cfg = config.load(None, env={})
    assert cfg.camera.source == "webcam" and cfg.display.height > cfg.display.width
    documented = tomllib.loads((config.CONFIG_DIR / "mirror.toml").read_text())
    assert documented == config.documented_defaults()
    assert (config.CONFIG_DIR / "mirror.toml").read_text() == config.documented_toml()


def test_every_problem_is_named_with_key_and_expected_form(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text('[camera]\nsource = "dslr"\nfps = "fast"\n[display]\nwidth = 0\n[colour]\nx = 1\n'
                 '[gestures]\nhold = 3\n')
    with pytest.raises(config.ConfigError) as e:
        config.load(f, env={})
    text = "\n".join(e.value.problems)
    assert "camera.source: got 'dslr', expected one of webcam" in text
    assert "camera.fps: got 'fast', expected an integer" in text
    assert "display.width: got 0, expected a value from 90 to" in text
    assert "[colour]: unknown section" in text
    assert "gestures.hold: unknown key" in text
    assert len(e.value.problems) == 5


def test_unreadable_config_gives_one_clear_line(tmp_path):
    f = tmp_path / "broken.toml"
    f.write_text("[camera\nsource=")
    with pytest.raises(config.ConfigError, match="not valid TOML"):
        config.load(f, env={})
    with pytest.raises(config.ConfigError, match="file not found"):
        config.load(tmp_path / "missing.toml", env={})


def test_file_source_needs_a_path(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[camera]\nsource = "video"\n')
    with pytest.raises(config.ConfigError, match="camera.path: empty"):
        config.load(f, env={})


def test_environment_overrides(tmp_path):
    cfg = config.load(None, env={"MIRROR_CAMERA_SOURCE": "video", "MIRROR_CAMERA_PATH": "clip.mp4",
                                 "MIRROR_GESTURES_HOLD_FRAMES": "7"})
    assert (cfg.camera.source, cfg.camera.path, cfg.gestures.hold_frames) == ("video", "clip.mp4", 7)
    with pytest.raises(config.ConfigError, match="gestures.hold_frames"):
        config.load(None, env={"MIRROR_GESTURES_HOLD_FRAMES": "many"})


def test_check_config_cli_lists_all_problems_and_exits_2(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text('[camera]\nsource = 3\n[vision]\nhands_model = "huge"\n')
    r = subprocess.run([sys.executable, "-m", "mirror", "check-config", str(f)], capture_output=True, text=True)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 2 and "camera.source" in lines[0] and "vision.hands_model" in lines[1]
    ok = subprocess.run([sys.executable, "-m", "mirror", "check-config", str(config.CONFIG_DIR / "mirror.toml")],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
