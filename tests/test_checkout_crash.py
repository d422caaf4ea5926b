"""kill -9 at each point of the real code path, then a restart: the outbox
resumes and the store receives each order exactly once by idempotency key;
an order the shopper was told about is never missing."""

import os
import sqlite3
import subprocess
import sys
import time

import pytest

from mirror.core.config import DEMO_CLIP
from mirror.storage.orders import CRASHPOINTS
from tests.pcsc_fixtures import HostProc, member_tag
from tests.test_checkout_flow import host_env, wait_pending_zero

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rows(db_path, sql):
    db = sqlite3.connect(db_path)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


@pytest.mark.parametrize("point", CRASHPOINTS)
def test_sigkill_at_each_point_then_restart_delivers_exactly_once(point, pcscd, store, tmp_path):
    db_path = tmp_path / "orders.db"
    env = host_env(pcscd, tmp_path, store, MIRROR_TEST_CRASHPOINT=point)
    host = HostProc(env)
    host.wait_for("nfc.status", 10, ok=True)
    host.shopper(sku="DRESS-0930", size="M")
    card = member_tag(bytes.fromhex("04EE0000000001"), member="M7001").insert(port=pcscd.port)
    host.wait_for("exited", 15)
    assert host.proc.wait(5) == -9                                    # SIGKILL, at that point
    card.remove()
    orders = rows(db_path, "SELECT order_id, state FROM orders")
    attempts = rows(db_path, "SELECT outcome FROM deliveries")
    if point == "before_write":
        assert orders == [] and attempts == []
        assert not any(e["ev"] == "checkout.confirmed" for e in host.seen)   # never promised
    elif point == "after_write":
        assert [o[1] for o in orders] == ["recorded"] and attempts == []
        assert not any(e["ev"] == "checkout.confirmed" for e in host.seen)
    else:
        assert [o[1] for o in orders] == ["recorded"] and attempts == [("in_flight",)]
    applied_before = dict(store.applied)
    if point == "after_delivery":
        assert applied_before == {orders[0][0]: 1}                    # the store has it, the kiosk doesn't know
    else:
        assert applied_before == {}
    time.sleep(0.5)                                                   # pcscd notices the removal

    env.pop("MIRROR_TEST_CRASHPOINT")
    host = HostProc(env)
    try:
        host.wait_for("nfc.status", 10, ok=True)
        if point in ("before_write", "after_write"):
            # She saw no confirmation: the restarted mirror (a new session) gets her tap again.
            host.shopper(sku="DRESS-0930", size="M")
            with member_tag(bytes.fromhex("08EE0000000002"), member="M7001").insert(port=pcscd.port):
                shown = host.wait_for("checkout.confirm_shown", 10)
            if point == "after_write":
                assert shown["order_id"] == orders[0][0]              # the order already written
            order_id = shown["order_id"]
        else:
            order_id = orders[0][0]
        wait_pending_zero(db_path)
    finally:
        host.stop()
    assert [r[0] for r in rows(db_path, "SELECT order_id FROM orders")] == [order_id]
    assert rows(db_path, "SELECT state FROM orders") == [("sent",)]
    assert store.applied == {order_id: 1} and len(store.created_keys()) == 1
    outcomes = [r[0] for r in rows(db_path, "SELECT outcome FROM deliveries ORDER BY id")]
    if point in ("before_delivery", "after_delivery"):
        assert outcomes == ["interrupted", "ok"]
    if point == "after_delivery":
        assert store.replays == 1                                     # sent twice, applied once


def test_real_kiosk_killed_before_delivery_resumes_after_restart(pcscd, store, tmp_path):
    """The real `mirror run` kiosk (camera = the bundled clip, vision and all)."""
    db_path = tmp_path / "orders.db"
    env = dict(os.environ)
    env.update(host_env(pcscd, tmp_path, store))
    env.update({"MIRROR_CAMERA_SOURCE": "video", "MIRROR_CAMERA_PATH": str(DEMO_CLIP), "MIRROR_CALL_ENABLED": "false",
                "MIRROR_DISPLAY_WIDTH": "270", "MIRROR_DISPLAY_HEIGHT": "480", "SDL_VIDEODRIVER": "dummy",
                "MIRROR_TEST_CRASHPOINT": "before_delivery"})
    kiosk = subprocess.Popen([sys.executable, "-m", "mirror", "run", "--headless", "--duration", "60"], cwd=ROOT,
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        # Tap repeatedly until the kiosk is up and takes it (startup loads the vision models).
        deadline = time.monotonic() + 60
        while kiosk.poll() is None and time.monotonic() < deadline:
            with member_tag(bytes.fromhex("04FF0000000001"), member="M8001").insert(port=pcscd.port):
                time.sleep(1.0)
            time.sleep(0.6)
        assert kiosk.wait(5) == -9, kiosk.stderr.read()[-800:]
    finally:
        if kiosk.poll() is None:
            kiosk.kill()
    (order_id, state), = rows(db_path, "SELECT order_id, state FROM orders")
    assert state == "recorded" and store.applied == {}
    assert rows(db_path, "SELECT outcome FROM deliveries") == [("in_flight",)]
    env.pop("MIRROR_TEST_CRASHPOINT")
    kiosk = subprocess.Popen([sys.executable, "-m", "mirror", "run", "--headless", "--duration", "30"], cwd=ROOT,
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_pending_zero(db_path, timeout=45)
    finally:
        kiosk.terminate()
        assert kiosk.wait(20) == 0, kiosk.stderr.read()[-1500:]
    assert store.applied == {order_id: 1}
    assert rows(db_path, "SELECT state, payment_status FROM orders") == [("sent", "awaiting payment")]
