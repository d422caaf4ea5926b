"""The pure checkout state machine: no I/O, events in, commands and a view out."""

import pytest

from nfc import checkout as C

CART = {"items": [{"sku": "DRESS-0930", "name": "Wrap dress", "colour": "Navy", "size": "S", "price": "79.00",
                   "qty": 1}], "reserve": False}


def machine(cart=CART, session="s1"):
    m = C.Checkout(confirm_s=20.0, notice_s=4.0)
    m.handle(C.SessionStarted(session))
    m.handle(C.CartChanged(cart, session))
    return m


def saved(m, cmd, order_id="7F3A00112233AABB", code="K7Q2M9", pay="till", created=True, now=1.1):
    return m.handle(C.Saved(cmd.key, order_id, code, pay, created, now))


def test_confirmation_only_after_the_order_is_saved_and_names_the_shopper():
    m = machine()
    cmds = m.handle(C.Tapped("M1", "uidhash1", "Jenny", t_present=0.9, now=1.0))
    assert len(cmds) == 1 and isinstance(cmds[0], C.SaveOrder)
    assert cmds[0].card_id == "m:M1" and cmds[0].cart == CART and cmds[0].session_id == "s1"
    v = m.view(1.0)
    assert v.kind == "saving" and "ready to pay" not in v.title        # nothing promised before the write
    out = saved(m, cmds[0])
    assert [a.name for a in out] == ["checkout.confirmed"] and out[0].data["t_present"] == 0.9
    v = m.view(1.2)
    assert v.kind == "confirmed" and v.title == "Got it, Jenny: order 7F3A… is ready to pay"
    assert v.code == "K7Q2M9" and v.seq == 1 and v.t_present == 0.9
    assert m.view(21.5) is not None and m.handle(C.Tick(21.5)) == [] and m.view(21.5) is None   # closes


def test_double_tap_gives_the_same_order_even_from_a_phone_with_a_new_uid():
    m = machine()
    first = m.handle(C.Tapped("M1", "uid-a", "Jenny", now=1.0))[0]
    assert m.handle(C.Tapped("M1", "uid-a", "Jenny", now=1.05)) == []     # still saving: nothing new
    saved(m, first)
    again = m.handle(C.Tapped("M1", "uid-b", "Jenny", now=2.0))           # randomised UID, same member
    assert [type(c) for c in again] == [C.Announce] and again[0].name == "checkout.repeat"
    assert "Same order — you already tapped" in m.view(2.1).lines
    # the key depends only on session + card + cart
    assert C.idempotency_key("s1", "m:M1", CART) == first.key
    assert C.idempotency_key("s2", "m:M1", CART) != first.key
    assert C.idempotency_key("s1", "m:M2", CART) != first.key


def test_idempotency_keys_are_stable_across_releases():
    # Computed before canonical JSON moved to mirror.core.canonical: orders already on disk
    # and at the store carry these keys, so a double tap after an upgrade must still match.
    assert C.idempotency_key("s1", "m:M1", CART) == "d4f05fece9c5cc49b9ea0c871faf7053"
    cart = {"items": [{"sku": "X", "name": "Robe été", "price": "9.50", "qty": 2}], "reserve": True}
    assert C.idempotency_key("sé", "u:abc", cart) == "589fbf6fac15dd31084d236f3fa304ea"


def test_a_different_card_during_an_open_checkout_is_refused_politely():
    m = machine()
    first = m.handle(C.Tapped(None, "uid-a", now=1.0))[0]
    assert first.card_id == "u:uid-a"
    out = m.handle(C.Tapped(None, "uid-b", now=1.01))                      # while saving
    assert [a.name for a in out] == ["checkout.refused"]
    saved(m, first, pay="store")
    out = m.handle(C.Tapped("M9", "uid-c", "Ann", now=2.0))                # while open
    assert [a.name for a in out] == ["checkout.refused"]
    v = m.view(2.1)
    assert v.kind == "refused" and "another card" in v.title
    assert m.view(6.5).kind == "confirmed"                                 # the notice passes, the order stays


def test_cancel_gesture_cancels_the_open_order_and_frees_the_reader():
    m = machine()
    cmd = m.handle(C.Tapped(None, "uid-a", now=1.0))[0]
    saved(m, cmd, order_id="ABCD000000000001")
    out = m.handle(C.CancelGesture(now=3.0))
    assert out[0] == C.CancelOrder("ABCD000000000001") and out[1].name == "checkout.cancelled"
    assert m.view(3.1).kind == "cancelled" and "ABCD… cancelled" in m.view(3.1).title
    assert isinstance(m.handle(C.Tapped(None, "uid-b", now=4.0))[0], C.SaveOrder)   # another card may now pay


def test_a_tap_after_she_cancelled_is_a_new_order_not_the_cancelled_one_again():
    m = machine()
    first = m.handle(C.Tapped("M1", "uid-a", "Jenny", now=1.0))[0]
    saved(m, first, order_id="ABCD000000000001")
    m.handle(C.CancelGesture(now=3.0))
    again = m.handle(C.Tapped("M1", "uid-a", "Jenny", now=9.0))[0]
    assert isinstance(again, C.SaveOrder) and again.key != first.key
    assert again.key == C.idempotency_key("s1", "m:M1", CART, attempt=1)
    # a double tap of that new attempt is still the same order
    saved(m, again, order_id="ABCD000000000009")
    assert m.handle(C.Tapped("M1", "uid-a", "Jenny", now=9.5))[0].name == "checkout.repeat"
    # a new shopper starts again from the first attempt
    m.handle(C.CartChanged(CART, "s2"))
    assert m.handle(C.Tapped("M1", "uid-a", "Jenny", now=30.0))[0].key == C.idempotency_key("s2", "m:M1", CART)


def test_an_order_the_journal_has_as_cancelled_is_never_confirmed():
    m = machine()
    cmd = m.handle(C.Tapped("M1", "uid-a", "Jenny", now=1.0))[0]
    out = m.handle(C.Saved(cmd.key, "ABCD000000000001", "K7Q2M9", "till", False, 1.1, state="cancelled"))
    assert [a.name for a in out] == ["checkout.refused"] and out[0].data["reason"] == "cancelled"
    v = m.view(1.2)
    assert v.kind == "cancelled" and "was cancelled" in v.title and not v.code
    retry = m.handle(C.Tapped("M1", "uid-a", "Jenny", now=2.0))[0]
    assert isinstance(retry, C.SaveOrder) and retry.key != cmd.key


@pytest.mark.parametrize("state, payment, line", [
    ("rejected", None, "The store checkout could not take it; staff will help at the till"),
    ("sent", "paid", "Store checkout: paid"),
    ("recorded", None, "Sending it to the store checkout…")])
def test_a_repeat_of_an_order_already_on_file_shows_how_it_stands(state, payment, line):
    m = machine()
    cmd = m.handle(C.Tapped("M1", "uid-a", "Jenny", now=1.0))[0]
    m.handle(C.Saved(cmd.key, "ABCD000000000001", "K7Q2M9", "store", False, 1.1, state=state,
                     payment_status=payment, payment_url="https://pay.example/x" if payment else None))
    v = m.view(1.2)
    assert v.kind == "confirmed" and line in v.lines and "Same order — you already tapped" in v.lines
    assert ("Pay on your phone: https://pay.example/x" in v.lines) == bool(payment)


def test_cancel_while_saving_cancels_as_soon_as_it_is_written():
    m = machine()
    cmd = m.handle(C.Tapped(None, "uid-a", now=1.0))[0]
    assert m.handle(C.CancelGesture(now=1.01)) == []
    out = saved(m, cmd, order_id="ABCD000000000002")
    assert out[0] == C.CancelOrder("ABCD000000000002")
    assert m.view(1.2).kind == "cancelled"


def test_pulled_card_says_tap_again_and_writes_nothing():
    m = machine()
    out = m.handle(C.ReadFailed("removed", now=1.0))
    assert [a.name for a in out] == ["checkout.read_failed"]
    assert m.view(1.1).title == "Card moved away too soon — tap again"
    assert m.phase == "idle" and m.view(5.5) is None


def test_a_card_given_up_on_after_the_tap_being_bought_does_not_cover_its_confirmation():
    m = machine()
    cmd = m.handle(C.Tapped("M1", "uidhash1", "Jenny", t_present=2.0, now=2.1))[0]
    saved(m, cmd, now=2.2)
    # a card put down at 1.0 on the other reader stalled; the watcher gives up on it now
    assert m.handle(C.ReadFailed("error", now=5.0, t_present=1.0)) == []
    assert m.view(5.1).kind == "confirmed" and m.view(5.1).code == "K7Q2M9"
    # a card put down after hers still says so
    assert [a.name for a in m.handle(C.ReadFailed("removed", now=6.0, t_present=5.5))] == ["checkout.read_failed"]
    assert m.view(6.1).title == "Card moved away too soon — tap again"


def test_store_pay_view_follows_delivery_and_reader_status_is_shown():
    m = machine()
    cmd = m.handle(C.Tapped("M1", "u", "", now=1.0))[0]
    saved(m, cmd, pay="store", order_id="BEEF000000000003")
    v = m.view(1.2)
    assert v.title == "Got it: order BEEF… is ready to pay" and "Sending it to the store checkout…" in v.lines
    m.handle(C.Delivered("BEEF000000000003", "create", "ok", "awaiting payment", "https://pay.example/x"))
    v = m.view(1.3)
    assert "Store checkout: awaiting payment" in v.lines and "Pay on your phone: https://pay.example/x" in v.lines
    m.handle(C.ReaderStatus(False, "NFC reader unavailable: no reader plugged in"))
    assert m.view(1.4).status == "NFC reader unavailable: no reader plugged in"
    m.handle(C.Tick(30.0))
    v = m.view(30.0)
    assert v.kind == "status" and v.status.startswith("NFC reader unavailable")


def test_new_shopper_closes_the_checkout_and_stale_saves_are_ignored():
    m = machine()
    cmd = m.handle(C.Tapped(None, "uid-a", now=1.0))[0]
    m.handle(C.CartChanged(CART, "s2"))                                    # a new session
    assert saved(m, cmd) == [] and m.view(1.2) is None
    m.handle(C.SessionEnded("s2"))
    out = m.handle(C.Tapped(None, "uid-a", now=2.0))                       # nobody there after she left
    assert out[0].name == "checkout.refused" and m.view(2.1).title == "Step in front of the mirror to check out"
    m = machine()
    cmd = m.handle(C.Tapped(None, "uid-a", now=1.0))[0]
    m.handle(C.SaveFailed(cmd.key, "disk full", now=1.1))
    assert m.view(1.2).kind == "error" and m.phase == "idle"


def test_a_tap_after_she_left_buys_nothing_even_with_the_next_default_cart():
    """The session publishes the next shopper's default cart right after
    session.ended; a card tapped then must not turn it into an order."""
    m = machine()
    m.handle(C.SessionEnded("s1"))
    m.handle(C.CartChanged(CART, "s2"))                 # what Session.handle() publishes next
    out = m.handle(C.Tapped("M1", "uid-a", "Jenny", now=3.0))
    assert [a.name for a in out] == ["checkout.refused"] and out[0].data["reason"] == "nobody present"
    assert not any(isinstance(c, C.SaveOrder) for c in out)
    m.handle(C.SessionStarted("s2"))                    # she is back: one tap, one order
    out = m.handle(C.Tapped("M1", "uid-a", "Jenny", now=4.0))
    assert len(out) == 1 and isinstance(out[0], C.SaveOrder) and out[0].session_id == "s2"
