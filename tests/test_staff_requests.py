"""The staff side's pure parts (issue 10): the size picker and "Put one aside"
on the mirror, the member-profile question, escalation of unanswered
requests, and the members' storage with its erasure."""

from __future__ import annotations

import json
import re

import pytest

from mirror.core import config
from mirror.core.bus import Event
from mirror.core.controls import control_at
from mirror.core.session import CONSENT_S, Session
from mirror.app.catalog_source import SEED_CSV, kiosk_catalog
from mirror.staff.service import MirrorCard
from mirror.storage.catalogue import Catalogue
from mirror.storage.members import MemberError, Members, UnknownMember
from mirror.storage.orders import OrderJournal


def _session() -> Session:
    cfg = config.load(None, env={})
    s = Session(kiosk_catalog(cfg.replace("catalog", path=str(SEED_CSV))), cfg.actions.model_dump())
    s.handle(Event("presence.changed", {"present": True}, 0.0))
    return s


def _press(s: Session, control_id: str, t: float):
    c = next(c for c in s.controls() if c.id == control_id)
    x, y, w, h = c.rect
    assert control_at(s.controls(), x + w / 2, y + h / 2) == c
    return s.handle(Event("cursor.dwell", {"x": x + w / 2, "y": y + h / 2, "control": c.id}, t))


def test_the_kiosk_catalogue_is_the_seed_csv_with_parts():
    s = _session()
    assert s.product.sku == "TOP-0412" and s.product.part == "upper"
    parts = {p.sku: p.part for p in s.catalog.products}
    assert parts["DRESS-0930"] == "dress" and parts["SHOE-0301"] == "none"


def test_the_size_picker_sets_her_size_and_asks_staff_to_bring_it_in_her_colour():
    s = _session()
    s.handle(Event("action.requested", {"action": "next_color"}, 1.0))
    colour = s.color_name
    out = _press(s, "sizes", 2.0)
    assert s.picking_size and ("action.done", {"action": "pick_size", "source": "control:sizes"}) in out
    ids = [c.id for c in s.controls()]
    assert ids == [f"size:{z}" for z in s.product.sizes] + ["picker_back"]
    assert s.carousel_up is False
    out = _press(s, "size:L", 3.0)
    assert not s.picking_size and s.cart()["items"][0]["size"] == "L"
    assert ("staff.called", {"product": "TOP-0412", "kind": "size", "size": "L", "colour": colour}) in out
    assert "size L" in s.message and colour in s.message
    _press(s, "sizes", 4.0)
    assert _press(s, "picker_back", 5.0) == [] and not s.picking_size and s.cart()["items"][0]["size"] == "L"


def test_help_says_what_she_has_on_and_put_one_aside_asks_the_staff_side_to_hold_it():
    s = _session()
    out = s.handle(Event("gesture.fired", {"gesture": "pinch"}, 1.0))
    [called] = [d for n, d in out if n == "staff.called"]
    assert called["kind"] == "help" and called["size"] == s.cart()["items"][0]["size"]
    out = _press(s, "reserve", 2.0)
    assert ("reserve.requested", {"on": True, "source": "mirror"}) in out
    s.handle(Event("reservation.failed", {"reason": "Size M in Black is not in stock here"}, 3.0))
    assert s.message == "Size M in Black is not in stock here" and s.cart()["reserve"] is False


def test_the_profile_question_a_thumbs_up_is_yes_anything_else_or_nothing_is_no():
    s = _session()
    s.handle(Event("member.tapped", {"member_id": "M1", "first_name": "Jenny"}, 1.0))
    assert s.consent is not None and [c.id for c in s.controls()] == ["consent_no", "consent_yes"]
    # a store tool or a script cannot answer for her
    out = s.handle(Event("action.requested", {"action": "confirm"}, 2.0))
    assert "member.consent" not in [n for n, _ in out] and s.consent is not None
    # ... while its other actions go on (a till cancelling her order)
    assert ("action.done", {"action": "cancel", "source": "script"}) in s.handle(
        Event("action.requested", {"action": "cancel"}, 2.5)) and s.consent is not None
    out = s.handle(Event("gesture.fired", {"gesture": "thumbs_up"}, 3.0))
    assert ("member.consent", {"member_id": "M1", "first_name": "Jenny", "granted": True}) in out
    assert s.member_name == "Jenny" and "Jenny" in s.message and "look.saved" not in [n for n, _ in out]
    # asked once per shopper
    s.handle(Event("member.tapped", {"member_id": "M1", "first_name": "Jenny"}, 4.0))
    assert s.consent is None

    s = _session()
    s.handle(Event("member.tapped", {"member_id": "M2", "first_name": "Ida"}, 1.0))
    out = s.handle(Event("gesture.fired", {"gesture": "open_palm"}, 2.0))          # anything else: no
    assert ("member.consent", {"member_id": "M2", "first_name": "Ida", "granted": False}) in out
    assert s.member_name == "" and "Ida" not in s.message

    s = _session()
    s.handle(Event("member.tapped", {"member_id": "M3", "first_name": "Uma"}, 1.0))
    assert s.tick(1.0 + CONSENT_S - 0.1) == []
    assert s.tick(1.0 + CONSENT_S + 0.1) == [("member.consent", {"member_id": "M3", "first_name": "Uma",
                                                                 "granted": False})]
    # nobody there: nothing is asked; and leaving forgets her name
    s.handle(Event("member.tapped", {"member_id": "M4"}, 30.0))
    s.handle(Event("presence.changed", {"present": False}, 31.0))
    s.handle(Event("member.tapped", {"member_id": "M5"}, 32.0))
    assert s.consent is None and s.member_name == ""


def test_a_request_nobody_answers_alerts_again_until_someone_does():
    card = MirrorCard()
    card.handle("session.started", {"id": "s1"}, 100.0)
    card.handle("staff.called", {"product": "TOP-0412", "kind": "size", "size": "L", "colour": "Sage"}, 100.0)
    [r] = card.requests
    assert (r["kind"], r["size"], r["colour"], r["alerts"]) == ("size", "L", "Sage", 1)
    assert card.escalate(150.0, 90.0) == []
    assert [x["id"] for x in card.escalate(190.0, 90.0)] == [r["id"]] and r["alerts"] == 2
    assert card.escalate(200.0, 90.0) == []
    card.handle("staff.replied", {"request_id": r["id"], "text": "On my way", "by": "Anna"}, 210.0)
    assert card.escalate(400.0, 90.0) == []


def test_the_card_shows_a_profile_only_while_she_shares_it():
    card = MirrorCard()
    card.handle("session.started", {"id": "s1"}, 1.0)
    card.handle("member.tapped", {"member_id": "M1", "first_name": "Jenny"}, 2.0)
    snap = card.snapshot(3.0)
    assert snap["member_status"] == "asked" and "Jenny" not in json.dumps(snap) and "M1" not in json.dumps(snap)
    card.handle("member.consent", {"member_id": "M1", "first_name": "Jenny", "granted": True}, 4.0)
    card.profile = {"member_id": "M1", "first_name": "Jenny"}
    assert card.snapshot(5.0)["member_status"] == "shared"
    card.handle("session.ended", {"id": "s1"}, 6.0)
    snap = card.snapshot(7.0)
    assert snap["profile"] is None and snap["member_status"] == "none" and "Jenny" not in json.dumps(snap)


CART = {"items": [{"sku": "DRESS-0930", "name": "Wrap dress", "colour": "Emerald", "size": "M", "price": "79.00",
                   "qty": 1}], "reserve": False}


def test_a_member_profile_and_forgetting_her(tmp_path):
    path = tmp_path / "orders.db"
    journal = OrderJournal(path)
    for i, member in enumerate(("M7", "M8")):
        journal.record_order(key=f"key{i}", session_id="s1", card_id=f"m:{member}", member_id=member,
                             uid_hash="u", cart=CART, store=False)
    with Catalogue(path) as cat, Members(path) as m:
        cat.import_csv(SEED_CSV.read_bytes())
        with pytest.raises(UnknownMember):
            m.profile("M7")
        with pytest.raises(MemberError):
            m.seen("bad id with spaces")
        m.seen("M7", "Jenny")
        m.seen("M7", "")                                         # a tap without a name keeps hers
        m.add_note("M7", "Anna", "Prefers  wrap dresses\n")
        m.add_look("M7", "DRESS-0930", "Wrap dress", "Navy")
        assert m.add_wishlist("M7", [("SHOE-0301", "", "38"), ("SHOE-0301", "", "38")]) == 1
        held = cat.reserve("DRESS-0930", "Emerald", "M", hold_s=3600, source="webstore", member_id="M7",
                           for_name="Jenny")
        p = m.profile("M7", cat)
        assert p["first_name"] == "Jenny" and p["sizes"] == ["M"] and not p["sizes_noted"]
        assert [o["items"] for o in p["orders"]] == [["Wrap dress Emerald M"]]
        assert p["notes"][0]["text"] == "Prefers wrap dresses" and p["notes"][0]["by"] == "Anna"
        assert p["looks"][0]["colour"] == "Navy" and p["wishlist"][0]["name"] == "Strappy high heels"
        assert [r["id"] for r in p["reservations"]] == [held.id] and p["reservations"][0]["source"] == "webstore"
        before = cat.stock("DRESS-0930", "Emerald", "M")

        counts = m.forget("M7")
        assert counts == {"member_notes": 1, "member_looks": 1, "member_wishlist": 1, "reservations_released": 1,
                          "orders_unlinked": 1}
        with pytest.raises(UnknownMember):
            m.profile("M7")
        assert cat.stock("DRESS-0930", "Emerald", "M") == before + 1          # her item is back on the shelf
        dump = "\n".join(m.db.iterdump())
        # as a whole word: a random order code ("VRXM7C") may hold the letters
        assert not re.search(r"\bM7\b", dump) and "Jenny" not in dump and "Prefers" not in dump
        assert "M8" in dump                                                    # nobody else is touched
        with pytest.raises(UnknownMember):
            m.forget("M7")
    journal.close()


def test_a_broken_database_still_shows_the_bundled_garments(tmp_path, caplog):
    db = tmp_path / "orders.db"
    db.write_bytes(b"this is not a database" * 100)
    cfg = config.load(None, env={"MIRROR_CHECKOUT_DB_PATH": str(db)})
    cat = kiosk_catalog(cfg)
    assert [p.sku for p in cat.products][:2] == ["TOP-0412", "SHIRT-2207"]
    assert any("cannot read the catalogue" in r.getMessage() and r.levelname == "ERROR" for r in caplog.records)
