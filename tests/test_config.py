import os
import re
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


def test_a_pipe_a_device_a_huge_file_a_bom_and_a_whole_section_in_the_environment(tmp_path):
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)                                   # check-config used to wait on it for ever
    with pytest.raises(config.ConfigError, match="not a regular file"):
        config.load(fifo, env={})
    with pytest.raises(config.ConfigError, match="not a regular file"):
        config.load("/dev/zero", env={})              # a MemoryError traceback before
    big = tmp_path / "big.toml"
    big.write_bytes(b"# " + b"x" * (2 << 20) + b"\n")
    with pytest.raises(config.ConfigError, match="bytes; a config is a short TOML text file"):
        config.load(big, env={})
    bom = tmp_path / "bom.toml"
    bom.write_bytes("\ufeffversion = 2\n[camera]\nfps = 15\n".encode())   # as a Windows editor saves it
    assert config.load(bom, env={}).camera.fps == 15
    with pytest.raises(config.ConfigError) as e:
        config.load(None, env={"MIRROR_CAMERA": "garbage"})
    assert e.value.problems == ["environment: MIRROR_CAMERA names the whole [camera] section; set one key, such "
                                "as MIRROR_CAMERA_SOURCE=..., or unset MIRROR_CAMERA"]


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


def test_a_misspelt_environment_override_is_named_not_ignored_in_silence(caplog):
    """MIRROR_DISPALY_WIDTH names no section; pydantic-settings alone would
    drop it without a word and the mirror would run with the file's width."""
    with caplog.at_level("WARNING", logger="mirror.core.config"):
        cfg = config.build({}, env={"MIRROR_DISPALY_WIDTH": "720", "MIRROR_DISPLAY_HEIGHT": "1280",
                                    "MIRROR_PCSCD_PRIVATE": "off"})
    said = [r.getMessage() for r in caplog.records]
    assert cfg.display.height == 1280
    assert len(said) == 1 and "MIRROR_DISPALY_WIDTH names no config section" in said[0] and "display" in said[0]


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


def test_nan_and_infinity_are_refused_from_a_file_and_from_the_environment(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("[call]\nlink_ttl_s = nan\n[camera]\nstall_timeout_s = inf\n[gestures]\ncooldown_s = -inf\n")
    with pytest.raises(config.ConfigError) as e:
        config.load(f, env={})
    assert e.value.problems == [
        "camera.stall_timeout_s: got inf, expected a finite number from 0.2 to 60.0",
        "gestures.cooldown_s: got -inf, expected a finite number from 0.0 to 10.0",
        "call.link_ttl_s: got nan, expected a finite number from 10.0 to 86400.0"]
    for value in ("nan", "inf", "-inf", "NaN"):
        with pytest.raises(config.ConfigError) as e:
            config.load(None, env={"MIRROR_CALL_LINK_TTL_S": value})
        assert len(e.value.problems) == 1
        assert e.value.problems[0].startswith("call.link_ttl_s: got ")
        assert "expected a finite number from 10.0 to 86400.0" in e.value.problems[0]
    r = subprocess.run([sys.executable, "-m", "mirror", "check-config", str(config.CONFIG_DIR / "mirror.toml")],
                       capture_output=True, text=True, env={**os.environ, "MIRROR_CALL_LINK_TTL_S": "nan"})
    assert r.returncode == 2 and "call.link_ttl_s" in r.stderr


def test_environment_values_are_parsed_as_the_key_type_and_strict_in_the_file(tmp_path):
    cfg = config.load(None, env={"MIRROR_DISPLAY_SHOW_FPS": "true", "MIRROR_CALL_LINK_TTL_S": "60",
                                 "MIRROR_CATALOG_PRODUCT": "123", "mirror_camera_fps": "15"})
    assert (cfg.display.show_fps, cfg.call.link_ttl_s, cfg.catalog.product, cfg.camera.fps) == (True, 60.0, "123", 15)
    f = tmp_path / "c.toml"
    f.write_text('[display]\nshow_fps = 1\n[camera]\nfps = 30.0\n[catalog]\nproduct = 123\n')
    with pytest.raises(config.ConfigError) as e:
        config.load(f, env={})
    assert e.value.problems == ["camera.fps: got 30.0, expected an integer",
                                "display.show_fps: got 1, expected true or false",
                                "catalog.product: got 123, expected a string"]


def test_call_without_tls_only_on_a_loopback_address_browsers_trust(tmp_path):
    for host in ("127.0.0.1", "localhost", "::1"):
        assert config.load(None, env={"MIRROR_CALL_HOST": host}).call.host == host
    for host in ("127.0.0.1.nip.io", "0.0.0.0", "192.168.1.20", "no-such-host.invalid"):
        with pytest.raises(config.ConfigError) as e:
            config.load(None, env={"MIRROR_CALL_HOST": host})
        assert e.value.problems[0] == (f"call.tls_cert: empty while call.host is {host!r}; browsers only allow "
                                       "the camera over https off this machine, so set call.tls_cert and "
                                       "call.tls_key")
    assert config.load(None, env={"MIRROR_CALL_HOST": "0.0.0.0", "MIRROR_CALL_ENABLED": "false"}).call.host == "0.0.0.0"


def test_a_wildcard_listener_needs_the_address_people_reach_it_at(tmp_path):
    """On 0.0.0.0 the join link read https://0.0.0.0:8443/join and no tablet could log in to the console."""
    cert = tmp_path / "c.pem"
    cert.write_text("-")
    tls = {"MIRROR_CALL_TLS_CERT": str(cert), "MIRROR_CALL_TLS_KEY": str(cert),
           "MIRROR_STAFF_TLS_CERT": str(cert), "MIRROR_STAFF_TLS_KEY": str(cert)}
    for host in ("0.0.0.0", "::", "", "0:0:0:0:0:0:0:0"):     # an empty host binds every address too
        with pytest.raises(config.ConfigError) as e:
            config.load(None, env={**tls, "MIRROR_CALL_HOST": host, "MIRROR_STAFF_HOST": host,
                                   "MIRROR_STAFF_PORT": "8080"})
        said = " ".join(e.value.problems)
        assert f"call.public_url: empty while call.host is {host!r}" in said
        assert f"staff.allowed_origins: empty while staff.host is {host!r}" in said
    ok = config.load(None, env={**tls, "MIRROR_CALL_HOST": "0.0.0.0", "MIRROR_STAFF_HOST": "0.0.0.0",
                                "MIRROR_CALL_PUBLIC_URL": "https://mirror3.store.lan:8443",
                                "MIRROR_STAFF_ALLOWED_ORIGINS": "https://mirror3.store.lan:8080"})
    assert ok.call.public_url and ok.staff.allowed_origins


def test_a_join_secret_file_the_kiosk_cannot_use_is_said_by_check_config_and_never_overwritten(tmp_path):
    from call.tokens import SecretFileError, load_secret
    short = tmp_path / "short.key"
    short.write_bytes(b"12345")
    with pytest.raises(config.ConfigError, match=r"call.secret_file: .* holds 5 bytes, .* delete it"):
        config.load(None, env={"MIRROR_CALL_SECRET_FILE": str(short)})
    with pytest.raises(SecretFileError, match="holds 5 bytes"):
        load_secret(short)
    assert short.read_bytes() == b"12345"                     # was silently replaced
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(config.ConfigError, match=r"cannot be made: .*a-file is a file, not a folder"):
        config.load(None, env={"MIRROR_CALL_SECRET_FILE": str(blocker / "join.key")})
    with pytest.raises(SecretFileError, match="cannot be made"):
        load_secret(blocker / "join.key")
    with pytest.raises(config.ConfigError, match="is a folder; name a file in it"):
        config.load(None, env={"MIRROR_CALL_SECRET_FILE": str(tmp_path)})
    # with the call off, its secret is nobody's business
    assert config.load(None, env={"MIRROR_CALL_SECRET_FILE": str(short), "MIRROR_CALL_ENABLED": "false"})
    made = load_secret(tmp_path / "new" / "join.key")         # made once, 0600, then read back
    assert len(made) == 32 and load_secret(tmp_path / "new" / "join.key") == made
    assert (tmp_path / "new" / "join.key").stat().st_mode & 0o777 == 0o600
    assert config.load(None, env={"MIRROR_CALL_SECRET_FILE": str(tmp_path / "new" / "join.key")}).call.secret_file


def test_control_section_replaces_call_control_socket(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[control]\nsocket = "run/control.sock"\n')
    cfg = config.load(f, env={})
    assert cfg.control.socket == "run/control.sock"
    assert cfg.resolve(cfg.control.socket) == tmp_path / "run" / "control.sock"
    from mirror.app.control import socket_path           # the kiosk and its clients agree, wherever they run
    assert socket_path(cfg) == socket_path(cfg, client=True) == tmp_path / "run" / "control.sock"
    assert list(config.SECTIONS).index("control") == list(config.SECTIONS).index("logging") + 1
    # A version 1 file (no version, or version = 1) is migrated; in a version 2 file the old key is unknown.
    f.write_text('version = 2\n[control]\nsocket = "x"\npath = "y"\n[call]\ncontrol_socket = "z"\n')
    with pytest.raises(config.ConfigError) as e:
        config.load(f, env={})
    assert e.value.problems == ["control.path: unknown key, expected one of socket, group",
                                e.value.problems[1]]
    assert e.value.problems[1].startswith("call.control_socket: unknown key (moved to control.socket)")
    f.write_text('[call]\ncontrol_socket = "z"\n')
    assert config.load(f, env={}).control.socket == "z"


def test_staff_section_and_its_port_apart_from_the_call(tmp_path):
    cfg = config.load(None, env={})
    assert (cfg.staff.enabled, cfg.staff.host, cfg.staff.port) == (True, "127.0.0.1", 8080)
    assert list(config.SECTIONS)[-1] == "staff"
    with pytest.raises(config.ConfigError, match=r"staff.port: got 0, expected a value from 1 to 65535"):
        config.load(None, env={"MIRROR_STAFF_PORT": "0"})
    clash = {"MIRROR_STAFF_PORT": "8443"}
    with pytest.raises(config.ConfigError, match=r"staff.port: got 8443, the same as call.port"):
        config.load(None, env=clash)
    with pytest.raises(config.ConfigError, match=r"staff.port: got 8443, the same as call.port"):
        config.load(None, env={**clash, "MIRROR_STAFF_HOST": "localhost"})
    assert config.load(None, env={**clash, "MIRROR_STAFF_ENABLED": "false"}).staff.port == 8443
    assert config.load(None, env={**clash, "MIRROR_CALL_ENABLED": "false"}).staff.port == 8443
    assert config.load(None, env={**clash, "MIRROR_STAFF_HOST": "127.0.0.2"}).staff.host == "127.0.0.2"


def test_cross_field_rules_all_reported_and_replace_revalidates(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[call]\ntls_cert = "missing.pem"\npublic_url = "mirror.example"\ncodecs = "VP8,AV1"\n'
                 '[checkout]\nretry_initial_s = 10.0\nretry_max_s = 1.0\nstore_url = "ftp://x"\n'
                 '[nfc]\nmember_record = "member"\n[display]\nwidth = 2000\nheight = 1000\n')
    with pytest.raises(config.ConfigError) as e:
        config.load(f, env={})
    keys = [p.split(":")[0] for p in e.value.problems]
    assert keys == ["display.width", "call.tls_key", "call.tls_cert", "call.public_url", "call.codecs",
                    "nfc.member_record", "checkout.retry_initial_s", "checkout.store_url"]
    cfg = config.load(None, env={})
    assert cfg.replace("display", width=540, height=960).display.width == 540 and cfg.display.width == 1080
    with pytest.raises(config.ConfigError, match="display.width: wider than display.height"):
        cfg.replace("display", width=2000)
    assert cfg.actions.model_dump()["victory"] == "call_friend"
    assert "base_dir" not in config.documented_toml() and "base_dir" not in cfg.model_dump()
    with pytest.raises(config.ConfigError, match=r"\[base_dir\]: unknown section"):
        config.build({"base_dir": "/"}, env={})


def test_config_version_missing_or_1_is_migrated_2_is_current_newer_and_non_integers_refused(tmp_path, caplog):
    f = tmp_path / "c.toml"
    assert config.CURRENT_VERSION == 2
    assert tomllib.loads(config.documented_toml())["version"] == 2
    assert config.documented_toml().index("version = 2") < config.documented_toml().index("[camera]")
    for head in ("", "version = 1\n"):
        f.write_text(head + '[call]\nport = 9443\ncontrol_socket = "run/c.sock"\n[control]\ngroup = "g"\n')
        caplog.clear()
        with caplog.at_level("WARNING", logger="mirror.core.config"):
            cfg = config.load(f, env={})
        assert (cfg.control.socket, cfg.control.group, cfg.call.port) == ("run/c.sock", "g", 9443)
        assert [r.getMessage() for r in caplog.records if "migrated" in r.getMessage()] == [
            f"{f}: config version 1 migrated to 2: moved call.control_socket to control.socket; write version = 2 "
            "and the new keys into the file (mirror check-config FILE checks it)"]
    # a version 1 file without the old key: accepted, nothing logged
    f.write_text('[call]\nport = 9443\n')
    caplog.clear()
    assert config.load(f, env={}).call.port == 9443 and not caplog.records
    # both the old and the new key, with different values: which one is meant is not guessed
    f.write_text('[call]\ncontrol_socket = "a"\n[control]\nsocket = "b"\n[camera]\nfps = 0\n')
    with pytest.raises(config.ConfigError) as e:
        config.load(f, env={})
    assert len(e.value.problems) == 2 and e.value.problems[0].startswith(
        "call.control_socket: moved to control.socket in version 2, and the file sets both")
    assert e.value.problems[1].startswith("camera.fps: got 0")
    # the current version
    f.write_text('version = 2\n[control]\nsocket = "s"\n')
    assert config.load(f, env={}).control.socket == "s"
    assert config.load(config.CONFIG_DIR / "mirror.toml", env={}).model_dump() == config.load(None, env={}).model_dump()
    # a newer file: refused, whatever else it holds
    f.write_text('version = 99\n[newsection]\nx = 1\n')
    with pytest.raises(config.ConfigError) as e:
        config.load(f, env={})
    assert e.value.problems == ["version: got 99, this mirror understands up to 2; update the mirror or use an "
                                "older config"]
    for bad in ('"2"', "2.0", "true", "[2]", "0", "-1"):
        f.write_text(f"version = {bad}\n")
        with pytest.raises(config.ConfigError) as e:
            config.load(f, env={})
        assert len(e.value.problems) == 1 and e.value.problems[0].startswith("version: got ")
        assert "expected an integer from 1 to 2" in e.value.problems[0]
    r = subprocess.run([sys.executable, "-m", "mirror", "check-config", str(f)], capture_output=True, text=True)
    assert r.returncode == 2 and "version: got -1" in r.stderr


@pytest.mark.parametrize("section", ["call", "staff"])
def test_allowed_origins_must_be_origins_not_a_wildcard_or_null(section):
    """`null` would let a sandboxed iframe or a file:// page open the call's websocket."""
    for bad in ("*", "null", "https://shop.example/path"):
        with pytest.raises(config.ConfigError, match=f"{section}.allowed_origins: got '{re.escape(bad)}'"):
            config.build({section: {"allowed_origins": bad}})
    cfg = config.build({section: {"allowed_origins": "https://shop.example:8443, http://10.0.0.5:8080"}})
    assert getattr(cfg, section).allowed_origins.startswith("https://shop.example")


def test_a_stall_timeout_shorter_than_three_frames_is_refused():
    """At 1 fps a 0.5 s stall timeout lost the camera between every two frames, for ever."""
    with pytest.raises(config.ConfigError, match=r"camera.stall_timeout_s: 0.5 s is under two frames at "
                                                 r"camera.fps = 1 \(2 s\)"):
        config.load(None, env={"MIRROR_CAMERA_FPS": "1", "MIRROR_CAMERA_STALL_TIMEOUT_S": "0.5"})
    assert config.load(None, env={"MIRROR_CAMERA_FPS": "1"}).camera.fps == 1     # a slideshow, default timeout
