"""Reading taps through a real pcscd with the vpcd reader: `mirror nfc read`,
the Type 4 reader (chunking, v1 fallback, malformed tags), cards pulled
mid-read, and the supervised watcher surviving a pcscd restart."""

import contextlib
import json
import subprocess
import sys
import threading
import time

import ndef
import pytest

from nfc import type4
from nfc.readers import ReaderWatcher
from mirror.harness.vpcd import Card, Type4Tag
from tests.pcsc_fixtures import Events, member_tag

LONG_RECORDS = [
    ndef.TextRecord("Welcome back! " * 250, "en"),                      # 3.5 KB of text
    ndef.UriRecord("https://store.example/member?member=M777&name=Jenny"),
    ndef.Record("urn:nfc:ext:store.example:member", "r1", b"id=M777&name=Jenny"),
    ndef.Record("application/json", "", json.dumps({"points": 1234, "tier": "gold"}).encode()),
    ndef.TextRecord("Bonjour", "fr"),
]


def nfc_read(*args, timeout=20, env=None):
    return subprocess.Popen([sys.executable, "-m", "mirror", "nfc", "read", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def wait_ready(delay=1.5):
    # `mirror nfc read` has to start Python and reach SCardGetStatusChange first.
    time.sleep(delay)


def test_long_multirecord_type4_message_read_in_mle_chunks(pcscd):
    msg = b"".join(ndef.message_encoder(LONG_RECORDS))
    assert len(msg) > 3000
    tag = Type4Tag(bytes.fromhex("04A1B2C3D4E5F6"), msg, mle=0x3B)
    p = nfc_read("--json", "--timeout", "20")
    wait_ready()
    with tag.insert(port=pcscd.port):
        out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    res = json.loads(out)
    assert res["reader"].startswith("Virtual PCD") and res["uid"] == "04a1b2c3d4e5f6"
    expected = [{"tnf": type4.record_tnf(r), "type": r.type, "payload_hex": bytes(r.data).hex()} for r in LONG_RECORDS]
    got = [{k: r[k] for k in ("tnf", "type", "payload_hex")} for r in res["ndef"]]
    assert got == expected
    assert [r["tnf"] for r in res["ndef"]] == [1, 1, 4, 2, 1]
    assert res["ndef"][0]["text"] == "Welcome back! " * 250 and res["ndef"][4]["text"] == "Bonjour"
    assert res["ndef"][1]["uri"] == "https://store.example/member?member=M777&name=Jenny"
    reads = [a for a in tag.apdus if a[1] == 0xB0]
    assert len(reads) >= len(msg) // 0x3B          # many chunks, none above MLe
    assert all(a[-1] <= 0x3B for a in reads[2:])
    assert tag.apdus[0] == bytes.fromhex("FFCA000000")


def test_v1_tag_plain_uid_card_and_card_already_on_the_reader(pcscd):
    v1 = Type4Tag(bytes.fromhex("04112233445566"), b"".join(ndef.message_encoder([ndef.TextRecord("v1 tag")])),
                  version=1, mle=0x20)
    with v1.insert(port=pcscd.port):
        time.sleep(0.6)                             # already present when the command starts
        r = subprocess.run([sys.executable, "-m", "mirror", "nfc", "read", "--json", "--timeout", "10"],
                           capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["uid"] == "04112233445566" and [x.get("text") for x in res["ndef"]] == ["v1 tag"]
    assert bytes.fromhex("00A4040007D276000085010100") in v1.apdus      # tried v2 first, then v1
    time.sleep(0.5)
    card = Card(bytes.fromhex("DEADBEEF"))
    p = nfc_read("--json", "--timeout", "20", "--reader", "Virtual PCD 00 01")
    wait_ready()
    with card.insert(port=pcscd.port + 1):          # the second vpcd slot
        out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert json.loads(out) == {"reader": "Virtual PCD 00 01", "uid": "deadbeef", "ndef": []}


def test_card_pulled_mid_read_gives_no_partial_result_then_next_tap_reads(pcscd):
    msg = b"".join(ndef.message_encoder(LONG_RECORDS))
    pulled = Type4Tag(bytes.fromhex("04000000000001"), msg, mle=0x3B, pull_after_reads=12)
    good = member_tag(bytes.fromhex("04000000000002"))
    p = nfc_read("--json", "--timeout", "20")
    wait_ready()
    pulled.insert(port=pcscd.port)
    assert pulled.pulled.wait(5), "the reader never got to the 12th chunk"
    pulled.remove()
    time.sleep(0.9)                                 # pcscd sees the removal
    assert p.poll() is None, "it must keep waiting after a pulled card, not print a partial result"
    with good.insert(port=pcscd.port):
        out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    res = json.loads(out)
    assert res["uid"] == "04000000000002" and len(res["ndef"]) == 1


def test_only_a_pulled_card_times_out_with_one_line(pcscd):
    msg = b"".join(ndef.message_encoder(LONG_RECORDS))
    pulled = Type4Tag(bytes.fromhex("04000000000003"), msg, mle=0x3B, pull_after_reads=3)
    p = nfc_read("--json", "--timeout", "4")
    wait_ready()
    pulled.insert(port=pcscd.port)
    out, err = p.communicate(timeout=30)
    pulled.remove()
    assert p.returncode == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "no tag within 4 s" in lines[0] and "left before its read finished" in lines[0]
    time.sleep(0.6)


def test_bad_input_and_no_pcscd_exit_2_with_one_line(pcscd, tmp_path):
    r = subprocess.run([sys.executable, "-m", "mirror", "nfc", "read", "--timeout", "1"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == ["mirror: error: no tag within 1 s"]
    for bad in ("0", "nan", "inf"):           # nan used to reach pcscd's wait and end in a traceback
        r = subprocess.run([sys.executable, "-m", "mirror", "nfc", "read", "--timeout", bad],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "--timeout" in r.stderr, r.stderr
    r = subprocess.run([sys.executable, "-m", "mirror", "nfc", "read", "--reader", "Acme 9000"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Acme 9000" in r.stderr
    import os
    env = dict(os.environ, PCSCLITE_CSOCK_NAME=str(tmp_path / "no-pcscd.comm"))
    r = subprocess.run([sys.executable, "-m", "mirror", "nfc", "read", "--timeout", "3"], capture_output=True,
                       text=True, timeout=30, env=env)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "mirror: error: no PC/SC reader found; is pcscd running and the reader plugged in?"]


def test_watcher_survives_a_pcscd_restart_and_reads_the_next_tap(pcscd):
    ev = Events()
    w = ReaderWatcher(ev, poll_s=0.2, backoff_initial_s=0.1, backoff_max_s=0.5)
    w.start()
    try:
        kind, data = ev.wait_for("status")
        assert data["ok"], data
        with Card(bytes.fromhex("01020304")).insert(port=pcscd.port):
            _, tap = ev.wait_for("tap", 5)
        assert tap["uid"] == bytes.fromhex("01020304") and tap["reader"] == "Virtual PCD 00 00"
        ev.wait_for("removed", 5)
        pcscd.kill()                                    # like a crash
        _, down = ev.wait_for("status", 5)
        assert not down["ok"] and "pcscd" in down["message"]
        time.sleep(1.0)                                 # it keeps retrying meanwhile
        pcscd.start()
        deadline = time.monotonic() + 10
        up = {"ok": False}
        while not up["ok"] and time.monotonic() < deadline:
            _, up = ev.wait_for("status", 10)
        assert up["ok"], up
        assert w.contexts >= 2
        with member_tag(bytes.fromhex("04050607080910")).insert(port=pcscd.port):
            _, tap = ev.wait_for("tap", 5)
        assert tap["uid"] == bytes.fromhex("04050607080910")
        assert type4.member_from_records(tap["records"]) == type4.Member("M1001", "Jenny")
        ev.wait_for("removed", 5)
    finally:
        w.stop()
    assert not w._thread.is_alive()


def readers_empty(timeout: float = 5.0) -> None:
    """Wait until pcscd has seen every card taken off (a card the test before
    removed is still "present" until pcscd next polls the reader)."""
    from smartcard import scard as S
    hr, ctx = S.SCardEstablishContext(S.SCARD_SCOPE_USER)
    assert hr == S.SCARD_S_SUCCESS
    try:
        _, names = S.SCardListReaders(ctx, [])
        states = [(r, S.SCARD_STATE_UNAWARE) for r in names or []]
        deadline = time.monotonic() + timeout
        while states and time.monotonic() < deadline:
            hr, states = S.SCardGetStatusChange(ctx, 100, states)
            if hr == S.SCARD_S_SUCCESS and not any(st & S.SCARD_STATE_PRESENT for _, st, _ in states):
                return
            states = [(r, st & ~S.SCARD_STATE_CHANGED) for r, st, _ in states]
        raise AssertionError(f"a card is still on a reader after {timeout} s")
    finally:
        S.SCardReleaseContext(ctx)


@contextlib.contextmanager
def watching(poll_s: float = 0.2):
    """A ReaderWatcher on the session's pcscd, once it has said how the readers
    are (with no card left on them); its events."""
    readers_empty()
    ev = Events()
    w = ReaderWatcher(ev, poll_s=poll_s)
    w.start()
    try:
        ev.wait_for("status")
        yield ev
    finally:
        w.stop()


def test_watcher_reports_a_pulled_card_as_read_failed(pcscd):
    with watching() as ev:
        msg = b"".join(ndef.message_encoder(LONG_RECORDS))
        tag = Type4Tag(bytes.fromhex("04000000000009"), msg, mle=0x3B, pull_after_reads=5)
        tag.insert(port=pcscd.port)
        _, failed = ev.wait_for(("read_failed", "tap"), 5)
        tag.remove()
        assert failed["reason"] == "removed" and "records" not in failed
        ev.wait_for("removed", 5)
    assert not any(k == "tap" for k, _ in ev.seen)


class SlowTag(Type4Tag):
    """Answers each command after `delay` seconds (a dawdling phone, a weak field)."""
    delay = 0.5

    def answer(self, apdu):
        time.sleep(self.delay)
        return super().answer(apdu)


def test_a_card_too_slow_to_read_is_given_up_on_and_other_readers_go_on(pcscd, monkeypatch):
    from nfc import readers
    monkeypatch.setattr(readers, "READ_DEADLINE_S", 1.2)
    msg = b"".join(ndef.message_encoder(LONG_RECORDS))
    slow = SlowTag(bytes.fromhex("04000000000011"), msg, mle=0x3B)     # 60+ commands at 0.5 s each
    fast = member_tag(bytes.fromhex("04000000000012"), member="M42", name="Jo")
    try:
        with watching() as ev:
            slow.insert(port=pcscd.vpcd_ports[0])
            time.sleep(0.3)
            fast.insert(port=pcscd.vpcd_ports[1])        # tapped on the second reader while the first dawdles
            t0 = time.monotonic()
            got = first_of_each(ev, 10, failed=too_slow, tap=tap_of(fast.uid))
            assert got["failed"]["reason"] == "error"
            assert type4.member_from_records(got["tap"]["records"]).id == "M42"
            assert time.monotonic() - t0 < 8.0             # the deadline and an answer or two, not half a minute
    finally:                                            # no card left on the readers
        slow.remove()
        fast.remove()


def first_of_each(ev, timeout, **want):
    """The first event matching each predicate `name=lambda kind, data: ...`, in
    whatever order they come (a card pcscd still thought present from the test
    before may come first, and fails)."""
    got = {}
    deadline = time.monotonic() + timeout
    while len(got) < len(want):
        kind, data = ev.wait_for(("tap", "read_failed", "removed"), max(0.01, deadline - time.monotonic()))
        for name, pred in want.items():
            if name not in got and pred(kind, data):
                got[name] = data
    return got


def too_slow(kind, data):
    return kind == "read_failed" and "too slowly" in data["message"]


def tap_of(uid):
    return lambda kind, data: kind == "tap" and data["uid"] == uid


class HangingTag(Type4Tag):
    """Hangs once, inside its answer to the `hang_at`-th command (a phone that
    freezes mid-read): the deadline checked between commands cannot help."""
    hang_s = 8.0      # well past the 1.2 s deadline, even with a loaded CI machine's delays

    def __init__(self, *args, hang_at: int = 3, **kw):
        super().__init__(*args, **kw)
        self.hang_at, self.commands = hang_at, 0
        self.hanging = threading.Event()

    def answer(self, apdu):
        self.commands += 1
        if self.commands == self.hang_at:
            self.hanging.set()
            time.sleep(self.hang_s)
        return super().answer(apdu)


def test_a_card_hanging_inside_one_answer_is_given_up_on_at_the_deadline_while_other_readers_go_on(
        pcscd, monkeypatch):
    from nfc import readers
    monkeypatch.setattr(readers, "READ_DEADLINE_S", 1.2)
    hung = HangingTag(bytes.fromhex("04000000000021"), b"".join(ndef.message_encoder(LONG_RECORDS)))
    fast = member_tag(bytes.fromhex("04000000000022"), member="M43", name="Al")
    try:
        with watching() as ev:
            hung.insert(port=pcscd.vpcd_ports[0])
            assert hung.hanging.wait(5)
            t0 = time.monotonic()
            fast.insert(port=pcscd.vpcd_ports[1])
            got = first_of_each(ev, hung.hang_s - 2, failed=too_slow, tap=tap_of(fast.uid))
            assert time.monotonic() - t0 < hung.hang_s - 2     # both while the first card still hangs
            assert got["failed"]["reader"] != got["tap"]["reader"]
            time.sleep(hung.hang_s - (time.monotonic() - t0) + 0.5)  # its answer comes at last: dropped
            hung.remove()
            gone = first_of_each(ev, 5, gone=lambda k, d: k == "removed" and d["reader"] == got["failed"]["reader"])
    finally:
        hung.remove()
        fast.remove()
    assert not any(k == "tap" and d["uid"] == hung.uid for k, d in ev.seen)
    after = ev.seen[next(i for i, (k, d) in enumerate(ev.seen) if d is gone["gone"]):]
    assert not any(k in ("tap", "read_failed") and d["reader"] == gone["gone"]["reader"] for k, d in after)


class HeldReads:
    """Stands in for ReaderWatcher._read: each read hangs (a card frozen
    mid-answer) until the test lets it go with `end(t_present, outcome)`."""

    def __init__(self, w):
        self.w, self.started, self.go = w, [], {}

    def __call__(self, job):
        self.go[job.t_present] = (gate := threading.Event(), [])
        self.started.append(job.t_present)
        gate.wait(10)
        for kind, data in self.go[job.t_present][1]:
            self.w._settle(job, kind, **data)

    def end(self, t_present, *outcome):
        gate, out = self.go[t_present]
        out.extend(outcome)
        gate.set()

    def wait_started(self, n):
        deadline = time.monotonic() + 5
        while len(self.started) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        return list(self.started)


def unit_watcher(monkeypatch, deadline=0.3):
    from nfc import readers
    monkeypatch.setattr(readers, "READ_DEADLINE_S", deadline)
    seen = []
    w = ReaderWatcher(lambda kind, **d: seen.append((kind, d)))
    reads = HeldReads(w)
    monkeypatch.setattr(w, "_read", reads)
    return w, reads, seen


def test_a_card_put_on_a_reader_still_busy_with_a_stalled_read_waits_for_it_then_is_told_to_tap_again(monkeypatch):
    from nfc import readers
    w, reads, seen = unit_watcher(monkeypatch)
    known = {"R": readers._Reader()}
    w._on_card("R", 1.0)
    time.sleep(0.4)
    w._tend_reads(known)
    assert [(k, d["message"]) for k, d in seen] == [("read_failed", readers.too_slow())]
    w._on_card("R", 2.0)                           # the next card, while that read still hangs
    assert reads.started == [1.0] and "R" in w._waiting
    assert w._wait_ms() <= 60                      # looked at again soon, not at the next poll
    reads.end(1.0)
    w._jobs["R"].thread.join(2)
    w._tend_reads(known)
    assert reads.wait_started(2) == [1.0, 2.0]     # read as soon as the last read ended
    time.sleep(0.4)
    w._tend_reads(known)                           # that one hangs too ...
    w._on_card("R", 3.0)
    time.sleep(0.4)
    w._tend_reads(known)                           # ... so the third is given up on, not read
    assert reads.started == [1.0, 2.0] and not w._waiting
    assert seen[-1][0] == "read_failed" and "tap again" in seen[-1][1]["message"] and seen[-1][1]["t_present"] == 3.0
    reads.end(2.0)


def test_a_card_lifted_during_its_read_is_said_removed_once_and_after_the_reads_outcome(monkeypatch):
    w, reads, seen = unit_watcher(monkeypatch, deadline=5)
    w._on_card("R", 1.0)
    reads.wait_started(1)
    w._on_removed("R")                             # pcscd saw it go before the read said so
    assert seen == []
    reads.end(1.0, ("read_failed", {"reason": "removed", "message": "card went away"}))
    w._jobs["R"].thread.join(2)
    assert [k for k, _ in seen] == ["read_failed", "removed"]
    w._on_card("R", 2.0)                           # the next card: read, then lifted after its tap
    reads.wait_started(2)
    reads.end(2.0, ("tap", {"uid": b"\x04\x01\x02\x03", "records": []}))
    w._jobs["R"].thread.join(2)
    w._on_removed("R")
    assert [k for k, _ in seen] == ["read_failed", "removed", "tap", "removed"]


def test_a_read_given_up_on_says_nothing_more_when_it_ends_and_nothing_is_said_after_stop(monkeypatch):
    w, reads, seen = unit_watcher(monkeypatch)
    w._on_card("R", 1.0)
    reads.wait_started(1)
    time.sleep(0.4)
    w._tend_reads({"R": None})
    reads.end(1.0, ("tap", {"uid": b"\x04\x01\x02\x03", "records": []}))     # its answer, too late
    w._jobs["R"].thread.join(2)
    assert [k for k, _ in seen] == ["read_failed"]
    w._tend_reads({"R": None})
    w._on_card("R", 2.0)
    reads.wait_started(2)
    w.stop()                                       # the kiosk is stopping while a card is read
    reads.end(2.0, ("tap", {"uid": b"\x04\x01\x02\x03", "records": []}))
    w._jobs["R"].thread.join(2)
    assert [k for k, _ in seen] == ["read_failed"]


def test_a_stalled_card_is_given_up_on_at_its_deadline_not_at_the_next_poll(pcscd, monkeypatch):
    from nfc import readers
    monkeypatch.setattr(readers, "READ_DEADLINE_S", 1.0)
    hung = HangingTag(bytes.fromhex("04000000000031"), b"".join(ndef.message_encoder(LONG_RECORDS)))
    try:
        with watching(poll_s=5.0) as ev:           # the longest poll the config allows
            hung.insert(port=pcscd.vpcd_ports[0])
            assert hung.hanging.wait(10)
            t0 = time.monotonic()
            got = first_of_each(ev, 6, failed=too_slow)
            assert time.monotonic() - t0 < 2.5, got    # the deadline (1 s from the card), not the 5 s poll
    finally:
        hung.remove()


# --- the Type 4 reader and member ids, against the emulated tag directly -------------
def transmit_to(card):
    def transmit(apdu):
        resp = card.answer(apdu)
        if resp is None:
            raise type4.CardRemovedError("pulled")
        return resp[:-2], (resp[-2] << 8) | resp[-1]
    return transmit


def test_type4_rejects_malformed_tags_and_never_returns_partial_data():
    msg = b"".join(ndef.message_encoder([ndef.TextRecord("x" * 500)]))
    ok = type4.read_tag(transmit_to(Type4Tag(b"\x04\x01\x00\x00", msg, mle=0x0F)))
    assert ok.records[0].text == "x" * 500 and ok.cc.mle == 0x0F
    with pytest.raises(type4.TagFormatError, match="read-protected"):
        type4.read_tag(transmit_to(Type4Tag(b"\x04\x02\x00\x00", msg, read_access=0xFF)))
    bad_len = Type4Tag(b"\x04\x03\x00\x00", msg)
    bad_len.max_size = 100                              # NLEN larger than the file
    with pytest.raises(type4.TagFormatError, match="exceeds"):
        type4.read_tag(transmit_to(bad_len))
    garbage = Type4Tag(b"\x04\x04\x00\x00", b"\xd1\x01\xff\x54")   # a record that claims 255 payload bytes
    with pytest.raises(type4.TagFormatError, match="malformed"):
        type4.read_tag(transmit_to(garbage))
    with pytest.raises(type4.CardRemovedError):
        type4.read_tag(transmit_to(Type4Tag(b"\x04\x05\x00\x00", msg, mle=0x3B, pull_after_reads=4)))
    picky = type4.read_tag(transmit_to(Type4Tag(b"\x04\x06\x00\x00", msg, select_with_le=False)))
    assert picky.records[0].text == "x" * 500 and picky.cc.version == 0x20
    plain = type4.read_tag(transmit_to(Card(b"\x01\x02\x03\x04")))
    assert plain.uid == b"\x01\x02\x03\x04" and plain.ndef_message is None and plain.records == []


@pytest.mark.parametrize("uid", [b"", b"\x04\x01\x02", bytes(11), bytes(200)])
def test_a_uid_no_card_has_is_refused_so_such_cards_cannot_share_one_identity(uid):
    # two shoppers whose cards answered GET DATA with nothing were one customer to the journal
    with pytest.raises(type4.TagFormatError, match="GET DATA"):
        type4.read_tag(transmit_to(Card(uid)))
    for n in (4, 7, 8, 10):
        assert type4.read_tag(transmit_to(Card(bytes(range(1, n + 1))))).uid == bytes(range(1, n + 1))


def test_member_id_from_external_uri_or_text_record():
    ext = ndef.Record("urn:nfc:ext:store.example:member", "", b"id=M42&name=Jenny")
    assert type4.member_from_records([ndef.TextRecord("hi"), ext]) == type4.Member("M42", "Jenny")
    assert type4.member_from_records([ndef.Record("urn:nfc:ext:store.example:member", "", b"M43")]) == \
        type4.Member("M43", "")
    assert type4.member_from_records([ndef.UriRecord("https://s.example/m?member=M44&name=Ann")]) == \
        type4.Member("M44", "Ann")
    assert type4.member_from_records([ndef.TextRecord("member: M45")]) == type4.Member("M45", "")
    assert type4.member_from_records([ndef.UriRecord("https://s.example/"), ndef.TextRecord("hello")]) is None
    # what a tag says reaches the screen, the database and a terminal: control characters do not
    nul = ndef.Record("urn:nfc:ext:store.example:member", "", "id=M8002&name=Jo%00hn\u202e".encode())
    assert type4.member_from_records([nul]) == type4.Member("M8002", "John")
    esc = ndef.Record("urn:nfc:ext:store.example:member", "", b"id=M1%1b[2J%1b]2;X%07%0a")
    assert type4.member_from_records([esc]) == type4.Member("M1[2J]2;X", "")
    assert type4.member_from_records([ndef.Record("urn:nfc:ext:store.example:member", "", b"id=%00%01")]) is None
    # an id longer than any of ours is no member id (it used to be cut to 64, which may name someone else)
    assert type4.member_from_records([ndef.TextRecord("member:" + "A" * 65)]) is None
    assert type4.member_from_records([ndef.TextRecord("member:" + "A" * 64)]) == type4.Member("A" * 64, "")
    other = ndef.Record("urn:nfc:ext:other.example:member", "", b"id=M46")
    assert type4.member_from_records([other]) is None
    assert type4.member_from_records([other], "urn:nfc:ext:other.example:member") == type4.Member("M46", "")
