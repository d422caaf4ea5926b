"""Tap-to-checkout end to end: real pcscd + vpcd cards, the real checkout path
(`mirror checkout-host`: session, service, journal, outbox, compositor) and a
loopback store checkout; plus the overlay on composed frames."""

import sqlite3
import subprocess
import sys
import time

import numpy as np

from tests.pcsc_fixtures import HostProc, member_tag


def host_env(pcscd, tmp_path, store=None, **extra):
    env = dict(pcscd.env())
    env.update({"MIRROR_CHECKOUT_DB_PATH": str(tmp_path / "orders.db"), "MIRROR_NFC_READER": "Virtual PCD",
                "MIRROR_CHECKOUT_STORE_URL": store.url if store else "", "MIRROR_NFC_POLL_S": "0.2",
                "MIRROR_CHECKOUT_STORE_TIMEOUT_S": "1", "MIRROR_CHECKOUT_RETRY_INITIAL_S": "0.05",
                "MIRROR_CHECKOUT_RETRY_MAX_S": "0.2"})
    env.update(extra)
    return env


def wait_pending_zero(db_path, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db = sqlite3.connect(db_path)
        n = db.execute("SELECT COUNT(*) FROM outbox WHERE done_at IS NULL").fetchone()[0]
        db.close()
        if n == 0:
            return
        time.sleep(0.1)
    raise AssertionError("the outbox did not drain")


def tap(card, pcscd, slot=0):
    card.insert(port=pcscd.vpcd_ports[slot])
    return card


def test_tap_double_tap_other_card_and_cancel_through_pcscd(pcscd, store, tmp_path):
    host = HostProc(host_env(pcscd, tmp_path, store))
    try:
        host.wait_for("nfc.status", 60, ok=True)
        marker = host.shopper(sku="DRESS-0930", size="S", colour_steps=2, reserve=True)
        assert marker["cart"]["items"][0] == {"sku": "DRESS-0930", "name": "Wrap dress", "colour": "Navy",
                                              "size": "S", "price": "79.00", "qty": 1}
        card = tap(member_tag(bytes.fromhex("04AA0000000001"), member="M5001", name="Jenny"), pcscd)
        shown = host.wait_for("checkout.confirm_shown", 60)
        confirmed = [e for e in host.seen if e["ev"] == "checkout.confirmed"][-1]
        assert confirmed["order_id"] == shown["order_id"] and confirmed["created"] and confirmed["pay"] == "store"
        # a composed frame showed it, after the card was seen (how soon is bench-checkout's business)
        assert shown["latency_ms"] > 0
        # The order was on disk before the confirmation frame: it is there now, with its reservation.
        db = sqlite3.connect(tmp_path / "orders.db")
        assert db.execute("SELECT COUNT(*) FROM orders").fetchone()[0] == 1
        assert db.execute("SELECT size, state FROM reservations").fetchall() == [("S", "held")]
        card.remove()
        host.wait_for("nfc.removed", 30)
        # Double tap from the same phone, which randomised its UID: the same order.
        again = tap(member_tag(bytes.fromhex("08BB0000000002"), member="M5001", name="Jenny"), pcscd, slot=1)
        rep = host.wait_for("checkout.repeat", 60)
        assert rep["order_id"] == shown["order_id"]
        again.remove()
        # Another card while her checkout is open: refused, no order.
        other = tap(member_tag(bytes.fromhex("04CC0000000003"), member="M9999", name="Ann"), pcscd)
        host.wait_for("checkout.refused", 60)
        other.remove()
        # The shopper cancels with the gesture: the store gets the create and then the cancel.
        host.send("action.requested", action="cancel", source="test")
        assert host.wait_for("checkout.cancelled", 30)["order_id"] == shown["order_id"]
        deadline = time.monotonic() + 60
        while not store.cancelled and time.monotonic() < deadline:
            time.sleep(0.05)
        wait_pending_zero(tmp_path / "orders.db")
        assert store.applied == {shown["order_id"]: 1} and store.cancelled == {shown["order_id"]}
        assert db.execute("SELECT COUNT(*) FROM orders").fetchone()[0] == 1
        assert db.execute("SELECT state FROM orders").fetchone()[0] == "cancelled"
        assert db.execute("SELECT state FROM reservations").fetchone()[0] == "released"
        assert len(store.created_keys()) == 1 and store.missing_key == 0
        # She changes her mind and taps again: a new order, never the cancelled one confirmed again
        # (its till code would have paid for nothing).
        anew = tap(member_tag(bytes.fromhex("04AA0000000001"), member="M5001", name="Jenny"), pcscd)
        second = host.wait_for("checkout.confirmed", 60)
        anew.remove()
        assert second["created"] and second["order_id"] != shown["order_id"]
        states = dict(db.execute("SELECT order_id, state FROM orders").fetchall())
        assert len(states) == 2 and states[shown["order_id"]] == "cancelled"
        assert states[second["order_id"]] in ("recorded", "sent")        # sent once the outbox delivers it
    finally:
        host.stop()


def test_pulled_card_then_retap_and_pay_at_the_till(pcscd, tmp_path):
    import ndef
    from mirror.harness.vpcd import Card, Type4Tag
    host = HostProc(host_env(pcscd, tmp_path))
    try:
        host.wait_for("nfc.status", 60, ok=True)
        host.shopper(sku="TOP-0412", size="XS")
        recs = [ndef.Record("urn:nfc:ext:store.example:member", "", b"id=M6001&name=Jenny"),
                ndef.TextRecord("terms " * 400)]
        msg = b"".join(ndef.message_encoder(recs))
        pulled = tap(Type4Tag(bytes.fromhex("04DD0000000001"), msg, mle=0x3B, pull_after_reads=20), pcscd)
        failed = host.wait_for("checkout.read_failed", 60)
        assert failed["reason"] == "removed"
        pulled.remove()
        host.wait_for("nfc.removed", 30)
        db = sqlite3.connect(tmp_path / "orders.db")
        assert db.execute("SELECT COUNT(*) FROM orders").fetchone()[0] == 0     # nothing from a partial read
        card = tap(Type4Tag(bytes.fromhex("04DD0000000001"), msg, mle=0x3B), pcscd)
        shown = host.wait_for("checkout.confirm_shown", 60)
        card.remove()
        row = db.execute("SELECT order_id, code, state, pay, member_id FROM orders").fetchone()
        assert row[0] == shown["order_id"] and row[2:] == ("pay_at_till", "till", "M6001")
        # A plain card (no NDEF) for the next shopper: identified by its salted UID hash.
        host.shopper(sku="SHIRT-2207", size="L")
        plain = tap(Card(bytes.fromhex("A1B2C3D4")), pcscd, slot=1)
        second = host.wait_for("checkout.confirm_shown", 60)
        plain.remove()
        assert second["order_id"] != shown["order_id"]
        card_ids = [r[0] for r in db.execute("SELECT card_id FROM orders ORDER BY created_at")]
        assert card_ids[0] == "m:M6001" and card_ids[1].startswith("u:") and "a1b2c3d4" not in card_ids[1]
    finally:
        host.stop()
    r = subprocess.run([sys.executable, "-m", "mirror", "orders", "--db", str(tmp_path / "orders.db")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and row[1] in r.stdout and "at the till" in r.stdout


def test_confirmation_and_reader_status_are_drawn_on_the_composed_frame(tmp_path):
    """In-process: the demo's scripted tap (the same bus event a real tap
    produces) goes through the real service, journal and compositor."""
    from mirror.core import config
    from mirror.core.bus import EventBus
    from mirror.core.catalog import load_catalog
    from mirror.app.demo import checkout_timeline
    from mirror.core.session import Session
    from nfc.service import CheckoutService
    from mirror.app.frameloop import FrameLoop
    from render.compositor import Compositor
    cfg = config.load(None, env={})
    session = Session(load_catalog(cfg.catalog_path()), cfg.actions.model_dump())
    bus = EventBus()
    session.attach(bus)
    svc = CheckoutService(cfg, bus, db_path=tmp_path / "o.db", watch=False)
    comp = Compositor(270, 480, headless=True)
    frame = np.full((720, 1280, 3), 60, np.uint8)
    loop = FrameLoop(bus, comp, lambda now: frame, [svc], 30)

    def step():
        loop.tick(time.monotonic())
        return svc.overlay.view, comp.snapshot()

    svc.start(None)
    for name, data in session.announce():
        bus.publish(name, **data)
    try:
        _, plain = step()
        bus.publish("presence.changed", present=True)      # a shopper at the mirror ...
        step()                                              # ... and her session is open
        tap_item = checkout_timeline(1.0)[0]
        assert tap_item.event == "nfc.tap" and "Scripted" in tap_item.banner
        bus.publish(tap_item.event, **tap_item.data)
        deadline = time.monotonic() + 60                    # generous: this waits for the writer thread
        ui = None
        while time.monotonic() < deadline:
            ui, shot = step()
            if ui is not None and ui.kind == "confirmed":
                break
            time.sleep(0.01)
        assert ui.title.startswith("Got it, Jenny: order ") and ui.code
        assert "Pay at the till with this code:" in ui.lines
        assert len(svc.latencies_ms) == 1
        changed = np.abs(shot.astype(int) - plain.astype(int)).sum(2) > 30
        assert changed[int(480 * 0.66):].mean() > 0.1 and changed[:int(480 * 0.5)].mean() < 0.01
        bus.publish("nfc.status", ok=False, message="NFC reader unavailable: no reader plugged in", readers=[])
        ui, shot2 = step()
        assert ui.status.startswith("NFC reader unavailable")
        assert (np.abs(shot2.astype(int) - shot.astype(int)).sum(2) > 30)[int(480 * 0.7):].mean() > 0.002
    finally:
        svc.stop()
        comp.close()


def test_kiosk_runs_on_when_the_order_journal_cannot_open(tmp_path):
    from mirror.core import config
    from mirror.core.bus import EventBus
    from nfc.service import CheckoutService
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    bus = EventBus()
    cart = {"items": [{"sku": "TOP-0412", "name": "Ribbed tank top", "colour": "Black", "size": "M",
                       "price": "29.90", "qty": 1}], "reserve": False}
    svc = CheckoutService(config.load(None, env={}), bus, db_path=blocker / "o.db", watch=False)
    bus.publish("cart.changed", cart=cart, session_id="s")
    svc.start(None)                                     # logs the problem, does not raise
    try:
        bus.dispatch()
        svc.before_frame(time.monotonic())
        view = svc.overlay.view
        assert view.kind == "status" and view.status.startswith("Checkout unavailable")
        bus.publish("nfc.tap", reader="r", uid=b"\x01\x02", records=[], t_present=time.monotonic())
        bus.dispatch()
        svc.before_frame(time.monotonic())
        assert svc.overlay.view.kind == "retry"             # no order, no promise
        assert not (blocker / "o.db").exists()
        # The folder becomes usable (a disk remounted, permissions mended): checkout comes back by
        # itself, where it used to stay off until a restart.
        blocker.unlink()
        blocker.mkdir()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and svc.uid_hash is None:
            svc.before_frame(time.monotonic())
            time.sleep(0.05)
        assert svc.uid_hash is not None and (blocker / "o.db").exists()
        svc.before_frame(time.monotonic() + 10)              # past the retry notice
        assert svc.overlay.view is None or svc.overlay.view.kind != "status"
        bus.publish("session.started", id="s")
        bus.publish("nfc.tap", reader="r", uid=b"\x01\x02\x03\x04", records=[], t_present=time.monotonic())
        bus.dispatch()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (svc.overlay.view is None or svc.overlay.view.kind != "confirmed"):
            bus.dispatch()
            svc.before_frame(time.monotonic())
            time.sleep(0.02)
        assert svc.overlay.view.kind == "confirmed"          # an order taken again
    finally:
        svc.stop()
