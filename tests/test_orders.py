"""The order journal (real SQLite) and the outbox against a real loopback store
checkout that fails on purpose."""

import json
import random
import sqlite3
import subprocess
import sys
import time

import pytest

from mirror.core.backoff import Backoff, delay_for, jitter_factor
from mirror.storage.orders import OrderJournal, Outbox, StoreClient
from nfc.checkout import idempotency_key

CART = {"items": [{"sku": "DRESS-0930", "name": "Wrap dress", "colour": "Navy", "size": "S", "price": "79.00",
                   "qty": 1},
                  {"sku": "SHOE-0101", "name": "Block-heel sandal", "colour": "Tan", "size": "38",
                   "price": "59.00", "qty": 1}], "reserve": True}


def record(j, cart=CART, session="s1", card="m:M1", store=True, **kw):
    key = idempotency_key(session, card, cart)
    return j.record_order(key=key, session_id=session, card_id=card, member_id=card[2:] if card[0] == "m" else None,
                          uid_hash=j.uid_hash(b"\x04\xaa\xbb\xcc\xdd\xee\xff"), cart=cart, store=store, **kw)


def test_journal_is_wal_full_sync_idempotent_and_private(tmp_path):
    j = OrderJournal(tmp_path / "o.db")
    assert j.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert j.db.execute("PRAGMA synchronous").fetchone()[0] == 2            # FULL
    order, created = record(j)
    assert created and order.state == "recorded" and order.total == "138.00" and len(order.code) == 6
    again, created2 = record(j)                                             # double tap: same key
    assert not created2 and again.order_id == order.order_id
    # A restart wipes the session: same card + same cart soon after is the same order ...
    third, created3 = record(j, session="s2")
    assert not created3 and third.order_id == order.order_id
    # ... but not another cart, nor another card, nor outside the window.
    other_cart = dict(CART, reserve=False)
    assert record(j, cart=other_cart)[1]
    assert record(j, card="m:M2")[1]
    assert record(j, session="s3", now=time.time() + 3600)[1]
    j.close()
    # Another connection sees it all (committed), and nothing personal is stored.
    db = sqlite3.connect(tmp_path / "o.db")
    assert db.execute("SELECT COUNT(*) FROM orders").fetchone()[0] == 4
    uid_hashes = {r[0] for r in db.execute("SELECT uid_hash FROM orders")}
    assert len(uid_hashes) == 1 and "04aabbccddeeff" not in next(iter(uid_hashes))
    raw = b"".join((tmp_path / n).read_bytes() for n in ("o.db", "o.db-wal") if (tmp_path / n).exists())
    assert b"\x04\xaa\xbb\xcc\xdd\xee\xff" not in raw and b"04aabbccddeeff" not in raw
    # the salt differs per database: the same card hashes differently elsewhere
    assert OrderJournal(tmp_path / "other.db").uid_hash(b"\x04\xaa\xbb\xcc\xdd\xee\xff") not in uid_hashes


def test_the_database_and_its_logs_are_readable_by_the_kiosk_and_its_group_only(tmp_path):
    import os
    from mirror.storage.catalogue import open_database
    old = os.umask(0o027)                       # 0o022 would give 0644; 0o077 would shut the staff group out
    try:
        j = OrderJournal(tmp_path / "o.db")
        record(j)
        shop = open_database(tmp_path / "shop.db")
        shop.execute("CREATE TABLE t (x)")
        shop.execute("INSERT INTO t VALUES (1)")
        made = [p for p in tmp_path.iterdir()]
        assert {p.name for p in made} >= {"o.db", "o.db-wal", "o.db-shm", "shop.db", "shop.db-wal"}
        assert {p.name: oct(p.stat().st_mode & 0o777) for p in made} == {p.name: "0o640" for p in made}
        shop.close()
        j.close()
        (tmp_path / "kept.db").touch(0o640)     # a mode the store chose is kept
        OrderJournal(tmp_path / "kept.db").close()
        assert (tmp_path / "kept.db").stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old)


def test_till_orders_reservations_and_cancel(tmp_path):
    j = OrderJournal(tmp_path / "o.db")
    order, _ = record(j, store=False, reservation_hold_s=3600)
    assert order.state == "pay_at_till" and order.pay == "till"
    assert j.pending_count() == 0                                           # nothing to deliver
    res = j.list_reservations()
    assert [(r["sku"], r["size"], r["state"], r["code"]) for r in res] == [("DRESS-0930", "S", "held", order.code)]
    assert abs(res[0]["expires_at"] - res[0]["created_at"] - 3600) < 1e-6
    assert j.list_reservations(now=time.time() + 7200)[0]["state"] == "expired"
    assert j.cancel_order(order.order_id) and not j.cancel_order(order.order_id)
    assert j.get(order.order_id).state == "cancelled"
    assert j.list_reservations()[0]["state"] == "released"
    # a cancelled order is not "the same order" for a new tap
    assert record(j, store=False, session="s9")[1]


def test_outbox_retries_500_timeout_and_drop_and_the_store_applies_once(tmp_path, store):
    j = OrderJournal(tmp_path / "o.db")
    order, _ = record(j)
    store.timeout_delay_s = 0.6
    store.plan.extend(["500", "timeout", "drop"])
    results = []
    ob = Outbox(tmp_path / "o.db", StoreClient(store.url, timeout_s=0.3), backoff_initial_s=0.05,
                backoff_max_s=0.2, on_result=lambda **d: results.append(d), seed=3)
    ob.start()
    try:
        deadline = time.monotonic() + 15
        while j.pending_count() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        ob.stop()
    assert j.pending_count() == 0
    rows = j.list_orders()
    o = rows[0]
    assert [d["outcome"] for d in o["deliveries"]] == ["http_500", "timeout", "conn_error", "ok"]
    assert [d["attempt"] for d in o["deliveries"]] == [1, 2, 3, 4]
    assert o["state"] == "sent" and o["payment_status"] == "awaiting payment"
    assert o["payment_url"].endswith(order.order_id)
    assert store.applied == {order.order_id: 1}                           # exactly once ...
    assert store.requests == 4 and store.replays >= 1 and store.missing_key == 0   # ... though it got it 3 times
    assert results[-1]["order_id"] == order.order_id and results[-1]["outcome"] == "ok"
    body = next(iter(store.orders.values()))
    assert body["code"] == order.code and body["member_id"] == "M1" and "uid" not in json.dumps(body)


def test_rejected_order_is_not_retried_and_cancel_follows_create(tmp_path, store):
    j = OrderJournal(tmp_path / "o.db")
    a, _ = record(j, card="m:A")
    b, _ = record(j, card="m:B")
    j.cancel_order(b.order_id)                     # cancelled before it was ever sent
    client = StoreClient(store.url, timeout_s=1)
    ob = Outbox(tmp_path / "o.db", client, backoff_initial_s=0.05, backoff_max_s=0.1)
    # Deliver by hand, in due order: A's create, B's create, then B's cancel.
    item, _ = j.next_due(time.time())
    assert (item.order_id, item.kind) == (a.order_id, "create")
    real_post = client.post
    client.post = lambda it: (422, '{"error": "unknown SKU"}')   # the store says no (a 4xx)
    assert ob.deliver(j, item) == "rejected"
    client.post = real_post
    kinds = []
    while True:
        item, _ = j.next_due(time.time())
        if item is None:
            break
        kinds.append(item.kind)
        assert ob.deliver(j, item) == "ok"
    assert kinds == ["create", "cancel"]
    assert j.get(a.order_id).state == "rejected" and j.pending_count() == 0
    assert j.get(b.order_id).state == "cancelled" and j.get(b.order_id).payment_status == "cancelled"
    assert store.cancelled == {b.order_id}


def test_backoff_grows_exponentially_with_jitter_and_is_capped():
    rng = random.Random(1)
    for n in range(1, 12):
        d = delay_for(n, 1.0, 60.0, jitter_factor(rng))
        base = min(60.0, 2 ** (n - 1))
        assert base * 0.5 <= d <= base
    assert len({round(delay_for(3, 1.0, 60.0, jitter_factor(rng)), 6) for _ in range(20)}) > 10   # jittered
    assert delay_for(10_000, 1.0, 300.0) == 300.0                    # days of retries: capped, no overflow


def test_stateful_backoff_doubles_to_the_cap_and_resets():
    b = Backoff(0.2, 5.0)
    assert [b.next() for _ in range(7)] == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    b.reset()
    assert b.next() == 0.2
    jittered = Backoff(1.0, 60.0, jitter=True, rng=random.Random(5))
    rng = random.Random(5)
    assert [jittered.next() for _ in range(9)] == [delay_for(n, 1.0, 60.0, jitter_factor(rng)) for n in range(1, 10)]


def test_mirror_orders_lists_states_attempts_and_reservations(tmp_path, store):
    j = OrderJournal(tmp_path / "o.db")
    order, _ = record(j)
    till, _ = record(j, card="m:M7", store=False)
    store.plan.append("500")
    ob = Outbox(tmp_path / "o.db", StoreClient(store.url, timeout_s=1), backoff_initial_s=0.05, backoff_max_s=0.1)
    item, _ = j.next_due(time.time())
    ob.deliver(j, item)
    r = subprocess.run([sys.executable, "-m", "mirror", "orders", "--json", "--db", str(tmp_path / "o.db")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    by_id = {o["order_id"]: o for o in data["orders"]}
    assert by_id[order.order_id]["state"] == "recorded"
    assert [d["outcome"] for d in by_id[order.order_id]["deliveries"]] == ["http_500"]
    assert by_id[order.order_id]["outbox"]["attempts"] == 1
    assert by_id[till.order_id]["state"] == "pay_at_till" and by_id[till.order_id]["code"] == till.code
    assert {r["code"] for r in data["reservations"]} == {order.code, till.code}
    r = subprocess.run([sys.executable, "-m", "mirror", "orders", "--db", str(tmp_path / "o.db")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and till.code in r.stdout and "pay_at_till" in r.stdout
    assert "outbox: create pending after 1 attempt(s)" in r.stdout and "reservations" in r.stdout
    r = subprocess.run([sys.executable, "-m", "mirror", "orders", "--db", str(tmp_path / "none.db")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "no order journal" in r.stderr


def test_store_url_and_retry_settings_are_validated():
    from mirror.core import config
    with pytest.raises(config.ConfigError) as e:
        config.load(None, env={"MIRROR_CHECKOUT_STORE_URL": "ftp://x", "MIRROR_CHECKOUT_RETRY_INITIAL_S": "500",
                               "MIRROR_CHECKOUT_RETRY_MAX_S": "10"})
    text = "\n".join(e.value.problems)
    assert "checkout.store_url: got 'ftp://x'" in text and "checkout.retry_initial_s: larger" in text

    # what the outbox would only have met at its first delivery, after orders were taken
    for url, why in [("http://", "names no host"), ("http://127.0.0.1:99999/orders", "port"),
                     ("https://store.lan/ord ers", "spaces")]:
        with pytest.raises(config.ConfigError) as e:
            config.load(None, env={"MIRROR_CHECKOUT_STORE_URL": url})
        assert why in e.value.problems[0], e.value.problems
    for token in ("abc\ndef", "jeton-\u20ac", "tok en"):
        with pytest.raises(config.ConfigError) as e:
            config.load(None, env={"MIRROR_CHECKOUT_STORE_TOKEN": token})
        assert "checkout.store_token" in e.value.problems[0] and token not in e.value.problems[0]   # a secret
    for token in ("eyJhb.c2_-x+/==", "12|AbCdEf0123456789", "key:secret"):   # JWT, Laravel Sanctum, key:secret
        assert config.load(None, env={"MIRROR_CHECKOUT_STORE_URL": "https://store.lan:8443/orders",
                                      "MIRROR_CHECKOUT_STORE_TOKEN": token}).checkout.store_token == token


@pytest.mark.parametrize("reply, status, url", [
    ('{"payment_status": {"state": "pending"}, "payment_url": ["x"]}', None, None),
    ('{"status": {"code": 1}}', None, None),
    ('{"payment_status": 7, "payment_url": "javascript:alert(1)"}', None, None),
    ('{"payment_status": "paid\\u0000\\u001b[2J", "payment_url": "https://pay.example/o/1"}', "paid[2J",
     "https://pay.example/o/1"),
    ('[1, 2]', None, None),
    ('[' * 100000 + ']' * 100000, None, None)])          # deeper than the JSON parser goes
def test_a_store_reply_of_any_shape_closes_its_order_and_the_next_one_is_sent(tmp_path, store, reply, status, url):
    """A reply with a nested payment_status once jammed the outbox: the same order re-sent
    every second, and the orders behind it never tried."""
    j = OrderJournal(tmp_path / "o.db")
    first, _ = record(j, card="m:A")
    second, _ = record(j, card="m:B")
    client = StoreClient(store.url, timeout_s=1)
    real_post = client.post
    client.post = lambda it: (201, reply) if it.order_id == first.order_id else real_post(it)
    ob = Outbox(tmp_path / "o.db", client, backoff_initial_s=0.05, backoff_max_s=0.1)
    ob.start()
    try:
        deadline = time.monotonic() + 10
        while j.pending_count() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        ob.stop()
    a, b = j.get(first.order_id), j.get(second.order_id)
    assert (a.state, a.payment_status, a.payment_url) == ("sent", status, url)
    assert b.state == "sent" and store.applied == {second.order_id: 1} and j.pending_count() == 0


def test_a_request_that_cannot_be_made_is_retried_and_never_logs_the_token(tmp_path, caplog):
    """A token with a line break used to end the outbox thread, quoting the token in the log."""
    import logging
    j = OrderJournal(tmp_path / "o.db")
    order, _ = record(j)
    client = StoreClient("http://127.0.0.1:9/orders", timeout_s=0.5, token="s3cret\nX")   # as a hand-made client
    ob = Outbox(tmp_path / "o.db", client, backoff_initial_s=0.05, backoff_max_s=0.1)
    with caplog.at_level(logging.WARNING):
        ob.start()
        try:
            deadline = time.monotonic() + 10
            while len(j.list_orders()[0]["deliveries"]) < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert ob._thread.is_alive()
        finally:
            ob.stop()
    attempts = j.list_orders()[0]["deliveries"]
    assert len(attempts) >= 3 and {d["outcome"] for d in attempts} == {"conn_error"}
    assert "checkout.store_token" in attempts[0]["error"]
    assert "s3cret" not in caplog.text and all("s3cret" not in (d["error"] or "") for d in attempts)
