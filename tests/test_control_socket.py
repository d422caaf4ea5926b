"""The control socket: its folder and its modes, what it refuses to delete or
follow, bounded and malformed request lines, and a client that does not talk
to a socket in a folder someone else controls. ControlServer runs in-process."""

from __future__ import annotations

import asyncio
import grp
import json
import logging
import os
import socket
import stat
import threading
import time
from pathlib import Path

import pytest

from mirror.app.control import MAX_LINE, ControlError, ControlServer, request

NOBODY = 65534
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")


async def _status(req: dict) -> dict:
    return {"ok": True, "status": "fine"}


HANDLERS = {"status": _status}


class Running:
    """A ControlServer on its own asyncio loop in a thread (the kiosk's arrangement)."""

    def __init__(self, path: Path, group: str | None = "no-such-group-for-mirror-tests"):
        self.server = ControlServer(path, HANDLERS, group=group)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float = 10):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def __enter__(self):
        self.run(self.server.start())
        return self

    def __exit__(self, *exc):
        self.run(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def start_fails(path: Path, group: str | None = None) -> str:
    server = ControlServer(path, HANDLERS, group=group)
    with pytest.raises(ControlError) as e:
        asyncio.run(server.start())
    return str(e.value)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def talk(path: Path, data: bytes, replies: int = 1) -> tuple[list[dict], bool]:
    """Send raw bytes; the JSON replies read, and whether the kiosk closed the connection."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(str(path))
    try:
        s.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass
    buf, closed = b"", False
    while buf.count(b"\n") < replies:
        chunk = s.recv(65536)
        if not chunk:
            closed = True
            break
        buf += chunk
    if not closed:
        s.settimeout(1)
        try:
            closed = s.recv(1) == b""
        except socket.timeout:
            closed = False
    s.close()
    return [json.loads(x) for x in buf.splitlines()], closed


# --- the folder and the modes ------------------------------------------------------------------------
def test_folder_0700_and_socket_0600_when_the_group_does_not_exist(tmp_path, caplog):
    sock = tmp_path / "run" / "control.sock"
    with caplog.at_level(logging.WARNING), Running(sock):
        assert mode(sock.parent) == 0o700
        assert stat.S_ISSOCK(os.lstat(sock).st_mode) and mode(sock) == 0o600
        assert request(sock, "status")["status"] == "fine"
    assert not sock.exists()
    assert any("does not exist" in r.getMessage() for r in caplog.records)


def test_folder_0750_and_socket_0660_with_an_existing_group(tmp_path):
    gid = os.getegid()                       # a group the kiosk's user is in, so chgrp works unprivileged
    name = grp.getgrgid(gid).gr_name
    if name == "video":
        pytest.skip("the test user's group is video, which is refused")
    sock = tmp_path / "run" / "control.sock"
    with Running(sock, group=name):
        assert mode(sock.parent) == 0o750 and os.stat(sock.parent).st_gid == gid
        assert mode(sock) == 0o660 and os.lstat(sock).st_gid == gid
        assert request(sock, "status")["ok"]


def test_the_video_group_is_never_used(tmp_path):
    sock = tmp_path / "run" / "control.sock"
    with Running(sock, group="video"):
        assert mode(sock) == 0o600 and mode(sock.parent) == 0o700


@root_only
def test_a_folder_owned_by_another_user_is_refused(tmp_path):
    folder = tmp_path / "smart-mirror-0"
    folder.mkdir(mode=0o700)
    os.chown(folder, NOBODY, NOBODY)
    msg = start_fails(folder / "control.sock")
    assert str(folder) in msg and "uid 65534" in msg and "rm -r" in msg
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("perm", [0o777, 0o1777, 0o770])
def test_a_folder_others_may_write_to_is_refused(tmp_path, perm):
    folder = tmp_path / "run"
    folder.mkdir()
    folder.chmod(perm)
    msg = start_fails(folder / "control.sock")
    assert str(folder) in msg and "chmod" in msg
    assert list(folder.iterdir()) == []


def test_a_symlinked_folder_is_refused(tmp_path):
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    (tmp_path / "run").symlink_to(tmp_path / "elsewhere")
    msg = start_fails(tmp_path / "run" / "control.sock")
    assert "symbolic link" in msg
    assert list((tmp_path / "elsewhere").iterdir()) == []


# --- what is at the socket's path ----------------------------------------------------------------------
def test_a_regular_file_at_the_path_is_not_deleted(tmp_path):
    sock = tmp_path / "control.sock"
    sock.write_text("precious")
    msg = start_fails(sock)
    assert str(sock) in msg and "regular file" in msg
    assert sock.read_text() == "precious"


def test_a_planted_symlink_at_the_path_is_neither_followed_nor_deleted(tmp_path):
    target = tmp_path / "target.txt"
    target.write_text("victim")
    sock = tmp_path / "control.sock"
    sock.symlink_to(target)
    msg = start_fails(sock)
    assert "symbolic link" in msg
    assert sock.is_symlink() and os.readlink(sock) == str(target) and target.read_text() == "victim"
    dangling = tmp_path / "dangling.sock"
    dangling.symlink_to(tmp_path / "nowhere" / "made.sock")
    assert "symbolic link" in start_fails(dangling)
    assert dangling.is_symlink() and not (tmp_path / "nowhere").exists()


def test_a_stale_socket_is_replaced_and_a_live_one_is_not(tmp_path):
    sock = tmp_path / "control.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(sock))
    stale.close()                                    # bound, nobody listening: a killed kiosk's socket
    with Running(sock):
        assert request(sock, "status")["ok"]
        assert "another kiosk is running" in start_fails(sock)
        assert request(sock, "status")["ok"]


def test_connections_beyond_the_cap_are_told_so_and_idle_ones_are_closed(tmp_path, monkeypatch):
    """4,200 idle connections used up the kiosk's files: its web listeners stopped answering."""
    from mirror.app import control
    monkeypatch.setattr(control, "MAX_CLIENTS", 3)
    monkeypatch.setattr(control, "IDLE_S", 1.0)
    sock = tmp_path / "control.sock"
    with Running(sock):
        idle = []
        for _ in range(3):
            c = socket.socket(socket.AF_UNIX)
            c.connect(str(sock))
            idle.append(c)
        time.sleep(0.2)
        replies, closed = talk(sock, b'{"cmd": "status"}\n')
        assert closed and replies[0]["ok"] is False and "busy" in replies[0]["error"]
        time.sleep(1.5)                                       # the three idle ones are closed ...
        for c in idle:
            c.settimeout(2)
            assert c.recv(1) == b""
            c.close()
        assert request(sock, "status")["ok"]                  # ... and the next client is served


def test_the_client_says_so_in_one_line_when_the_kiosk_takes_no_more_connections(tmp_path, monkeypatch):
    sock = tmp_path / "control.sock"
    with Running(sock):
        def full(self, address):
            raise BlockingIOError(11, "Resource temporarily unavailable")
        monkeypatch.setattr(socket.socket, "connect", full)
        with pytest.raises(ControlError, match="takes no more connections just now"):
            request(sock, "status")


# --- request lines -----------------------------------------------------------------------------------------
def test_an_over_long_line_gets_an_error_reply_and_the_connection_is_closed(tmp_path, caplog):
    sock = tmp_path / "control.sock"
    with caplog.at_level(logging.DEBUG), Running(sock):
        replies, closed = talk(sock, b'{"cmd": "status", "pad": "' + b"x" * (MAX_LINE + 10) + b'"}\n')
        assert replies == [{"ok": False, "error": replies[0]["error"]}] and "longer than" in replies[0]["error"]
        assert closed
        assert request(sock, "status")["ok"]         # the kiosk still serves the next client
    assert not any(r.exc_info for r in caplog.records), "a traceback in the log"


@pytest.mark.parametrize("line, words", [
    (b"hello there\n", "one JSON object"),
    (b"[1, 2, 3]\n", "JSON object"),
    (b'"status"\n', "JSON object"),
    (b"[" * 20000 + b"]" * 20000 + b"\n", "nested"),
    (b'{"cmd": "status", "x": NaN}\n', "NaN"),
    (b'{"cmd": "status", "x": -Infinity}\n', "NaN"),
    (b"\xff\xfe\xfd\n", "one JSON object"),
    (b'{"cmd": ["status"]}\n', "unknown command"),
], ids=["text", "array", "string", "nested", "nan", "infinity", "not-utf8", "cmd-not-a-string"])
def test_a_malformed_line_gets_a_one_line_error_and_the_connection_goes_on(tmp_path, caplog, line, words):
    sock = tmp_path / "control.sock"
    with caplog.at_level(logging.DEBUG), Running(sock):
        replies, closed = talk(sock, line + b'{"cmd": "status"}\n', replies=2)
        assert len(replies) == 2 and not closed
        assert replies[0]["ok"] is False and words in replies[0]["error"]
        assert replies[1] == {"ok": True, "status": "fine"}
    assert not any(r.exc_info for r in caplog.records), "a traceback in the log"


# --- the client side -------------------------------------------------------------------------------------
def _listening(path: Path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.listen(1)
    s.setblocking(False)
    return s


def _nobody_connected(s: socket.socket) -> bool:
    try:
        s.accept()[0].close()
        return False
    except BlockingIOError:
        return True


@root_only
def test_the_client_refuses_a_socket_in_a_folder_another_user_owns(tmp_path):
    tmp = tmp_path / "tmp"                            # like /tmp: anyone may make a folder here
    tmp.mkdir()
    tmp.chmod(0o1777)
    folder = tmp / f"smart-mirror-{os.geteuid()}"     # pre-created by another local user
    folder.mkdir(mode=0o755)
    fake = _listening(folder / "control.sock")       # an attacker's kiosk
    os.chown(folder, NOBODY, NOBODY)
    os.chown(folder / "control.sock", NOBODY, NOBODY)
    try:
        with pytest.raises(ControlError) as e:
            request(folder / "control.sock", "link")
        assert str(folder) in str(e.value) and "uid 65534" in str(e.value)
        assert _nobody_connected(fake)
    finally:
        fake.close()


def test_the_client_refuses_a_folder_others_may_write_to(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    fake = _listening(folder / "control.sock")
    folder.chmod(0o777)
    try:
        with pytest.raises(ControlError) as e:
            request(folder / "control.sock", "status")
        assert "writable by every user" in str(e.value)
        assert _nobody_connected(fake)
    finally:
        fake.close()


def test_the_client_does_not_talk_through_a_symlink_or_to_a_file(tmp_path):
    (tmp_path / "real").mkdir(mode=0o700)
    fake = _listening(tmp_path / "real" / "control.sock")
    try:
        (tmp_path / "link.sock").symlink_to(tmp_path / "real" / "control.sock")
        with pytest.raises(ControlError, match="not a socket"):
            request(tmp_path / "link.sock", "status")
        assert _nobody_connected(fake)
    finally:
        fake.close()
    (tmp_path / "file.sock").write_text("x")
    with pytest.raises(ControlError, match="not a socket"):
        request(tmp_path / "file.sock", "status")


def test_the_client_says_no_kiosk_runs_when_the_folder_is_missing(tmp_path):
    with pytest.raises(ControlError, match="no running kiosk"):
        request(tmp_path / "absent" / "control.sock", "status")


@root_only
def test_the_client_trusts_a_folder_root_gave_to_the_kiosk_user(tmp_path):
    """Like /run/smart-mirror (systemd's RuntimeDirectory= for User=mirror): only root can make
    entries in the parent, so the folder's owner was chosen by root, and root's client may use it."""
    run = tmp_path / "run"
    run.mkdir(mode=0o755)
    folder = run / "smart-mirror"
    folder.mkdir(mode=0o750)
    server = _listening(folder / "control.sock")
    os.chown(folder, NOBODY, NOBODY)

    def answer():
        server.setblocking(True)
        conn, _ = server.accept()
        conn.recv(1024)
        conn.sendall(b'{"ok": true, "status": "fine"}\n')
        conn.close()

    t = threading.Thread(target=answer, daemon=True)
    t.start()
    try:
        assert request(folder / "control.sock", "status", timeout=5)["status"] == "fine"
    finally:
        t.join(5)
        server.close()


def test_a_second_kiosk_on_the_same_config_refuses_to_start(tmp_path):
    """It used to log three errors and run on unreachable, sharing the order journal."""
    import subprocess
    import sys
    import cv2
    import numpy as np
    from tests.kiosk_proc import kiosk_config
    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "a.png"), np.full((72, 128, 3), 90, np.uint8))
    cfg = kiosk_config(tmp_path, frames, "[call]\nenabled = false\n[staff]\nenabled = false\n")
    with Running(tmp_path / "control.sock"):                 # the first kiosk's socket, answering
        r = subprocess.run([sys.executable, "-m", "mirror", "run", "--headless", "--duration", "20", "--config",
                            str(cfg)], capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, SDL_VIDEODRIVER="dummy"))
        assert request(tmp_path / "control.sock", "status")["ok"]      # and left alone
    assert r.returncode == 2, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("mirror: error: another kiosk is running"), r.stderr


def test_a_request_that_arrives_after_its_client_gave_up_is_not_done(tmp_path):
    """A push sent while the kiosk was stopped (SIGSTOP) was carried out on resume, after
    `mirror staff push` had already said "nothing pushed"."""
    sock = tmp_path / "control.sock"
    with Running(sock):
        late, _ = talk(sock, json.dumps({"cmd": "status", "deadline": time.monotonic() - 1}).encode() + b"\n")
        assert late == [{"ok": False, "error": "the request came after the client stopped waiting; not done"}]
        on_time, _ = talk(sock, json.dumps({"cmd": "status", "deadline": time.monotonic() + 10}).encode() + b"\n")
        assert on_time[0]["ok"]
        assert request(sock, "status")["ok"]                  # the client sends its own deadline
