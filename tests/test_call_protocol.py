"""The call's pure parts: join tokens, the signalling protocol, the session's
call states, and the time code that measures glass-to-glass latency."""

import json

import cv2
import numpy as np
import pytest

from call import protocol as P
from call.media import fit_into, read_timecode, stamp_timecode
from call.tokens import JoinTokens, RateLimiter, TokenError
from mirror.core.bus import Event
from mirror.core.catalog import load_catalog
from mirror.core.config import CONFIG_DIR, ConfigError, build
from mirror.core.session import Session

SECRET = b"k" * 32
NOW = 1_800_000_000.0


def reason(fn):
    with pytest.raises(TokenError) as e:
        fn()
    return e.value.reason


def test_tokens_are_signed_bound_single_use_and_expire():
    t = JoinTokens(SECRET, ttl_s=600)
    tok, claims = t.issue("sess-a", NOW)
    assert claims.expires == NOW + 600
    assert reason(lambda: JoinTokens(b"x" * 32).redeem(tok, "sess-a", NOW)) == "forged"   # another kiosk
    assert reason(lambda: t.redeem(tok.replace(".", ".x"), "sess-a", NOW)) == "forged"
    assert reason(lambda: t.redeem("nonsense", "sess-a", NOW)) == "forged"
    assert reason(lambda: t.redeem(None, "sess-a", NOW)) == "forged"
    assert reason(lambda: t.redeem(tok, "sess-b", NOW)) == "ended"          # another shopper's link
    tok2, _ = t.issue("sess-a", NOW)
    assert t.redeem(tok2, "sess-a", NOW + 10).session == "sess-a"
    assert reason(lambda: t.redeem(tok2, "sess-a", NOW + 11)) == "used"
    tok3, _ = t.issue("sess-a", NOW)
    assert reason(lambda: t.redeem(tok3, "sess-a", NOW + 600)) == "expired"
    # a forged body with a copied signature is still forged
    body, sig = tok2.split(".")
    other_body = tok3.split(".")[0]
    assert reason(lambda: t.redeem(f"{other_body}.{sig}", "sess-a", NOW)) == "forged"


def test_rate_limiter_counts_per_client_in_a_window():
    rl = RateLimiter(3, 60)
    assert [rl.allow("a", 0), rl.allow("a", 1), rl.allow("a", 2), rl.allow("a", 3)] == [True, True, True, False]
    assert rl.allow("b", 3)
    assert rl.allow("a", 61)


def effects(out, kind):
    return [e for e in out if isinstance(e, kind)]


def test_protocol_join_lobby_admit_offer_and_bye():
    tokens = JoinTokens(SECRET)
    room = P.Room(tokens, max_friends=1)
    room.new_session("s1")
    tok, _ = tokens.issue("s1", NOW)
    f = P.FriendProtocol(room, "c1", NOW)
    out = f.receive(json.dumps({"type": "join", "token": tok, "name": "  Jane\n<b>  "}), NOW)
    assert f.phase is P.Phase.LOBBY and f.name == "Jane <b>"
    assert effects(out, P.Send)[0].msg == {"type": "lobby", "name": "Jane <b>"}
    assert effects(out, P.Notify)[0].name == "call.knock"
    # an offer before being let in is refused and closes
    g = P.FriendProtocol(P.Room(tokens), "c9", NOW)
    g.room.new_session("s1")
    tok_g, _ = tokens.issue("s1", NOW)
    g.receive(json.dumps({"type": "join", "token": tok_g, "name": "G"}), NOW)
    assert effects(g.receive(json.dumps({"type": "offer", "sdp": "v=0"}), NOW), P.Send)[0].msg["reason"] == "not_now"

    out = f.admit()
    assert effects(out, P.Send)[0].msg == {"type": "admitted"}
    assert f.receive(json.dumps({"type": "offer", "sdp": "v=0\r\n..."}), NOW) == [P.Answer("v=0\r\n...")]
    assert f.receive(json.dumps({"type": "candidate", "candidate": "candidate:1 1 udp 1 127.0.0.2 5000 typ host",
                                 "sdpMid": "0", "sdpMLineIndex": 0}), NOW) == \
        [P.AddCandidate("1 1 udp 1 127.0.0.2 5000 typ host", "0", 0)]
    assert f.receive(json.dumps({"type": "candidate", "candidate": None}), NOW) == []
    out = f.receive(json.dumps({"type": "reaction", "kind": "comment", "text": "  love   it "}), NOW)
    assert effects(out, P.Notify)[0].data == {"name": "Jane <b>", "kind": "comment", "text": "love it"}
    out = f.receive(json.dumps({"type": "bye"}), NOW)
    assert P.StopPeer() in out and f.phase is P.Phase.CLOSED and room.members == {}
    assert effects(out, P.Notify)[-1].name == "call.ended"


@pytest.mark.parametrize("raw,why", [
    ("not json", "bad_message"), (json.dumps([1, 2]), "bad_message"), (json.dumps({"type": 5}), "bad_message"),
    (json.dumps({"type": "offer", "sdp": "v=0"}), "bad_message"),          # offer before join
    ("x" * (P.MAX_MESSAGE_BYTES + 1), "bad_message"), (b"\x00\x01", "bad_message"),
    # nesting too deep for json.loads (RecursionError), within the size limit and beyond it
    ("[" * 30000 + "]" * 30000, "bad_message"), ('{"type":"join","token":' + "[" * 30000 + "]" * 30000 + "}", "bad_message"),
    ("[" * 100000, "bad_message"),
    # numbers JSON does not have
    ('{"type":"join","token":NaN}', "bad_message"), ('{"type":"join","x":[Infinity]}', "bad_message"),
    ('{"type":"join","x":-Infinity}', "bad_message"), ('{"type":"join","x":1e999}', "bad_message"),
])
def test_protocol_refuses_anything_invalid_with_an_error_and_close(raw, why):
    room = P.Room(JoinTokens(SECRET))
    room.new_session("s1")
    f = P.FriendProtocol(room, "c1", NOW)
    out = f.receive(raw, NOW)
    assert out[:2] == [P.Send({"type": "error", "reason": why}), P.Close(why)]
    assert f.phase is P.Phase.CLOSED
    assert f.receive(json.dumps({"type": "bye"}), NOW) == []             # nothing after a close


def test_protocol_deep_nesting_and_non_finite_numbers_are_bad_messages_even_in_a_call(monkeypatch):
    monkeypatch.setattr(P, "MAX_MESSAGE_BYTES", 1_000_000)          # the parser's limit, not the size check
    tokens = JoinTokens(SECRET)
    room = P.Room(tokens)
    room.new_session("s1")
    for raw in ("[" * 100000 + "]" * 100000, '{"type":"reaction","kind":"comment","text":NaN}',
                '{"type":"candidate","candidate":"x","sdpMLineIndex":Infinity}'):
        f = P.FriendProtocol(room, "c1", NOW)
        tok, _ = tokens.issue("s1", NOW)
        f.receive(json.dumps({"type": "join", "token": tok, "name": "Jane"}), NOW)
        f.admit()
        f.receive(json.dumps({"type": "offer", "sdp": "v=0"}), NOW)
        out = f.receive(raw, NOW)
        assert out[:2] == [P.Send({"type": "error", "reason": "bad_message"}), P.Close("bad_message")]
        assert P.StopPeer() in out and f.phase is P.Phase.CLOSED and room.members == {}
    assert P.parse_message('{"a":[1.5,-0.0,2]}') == {"a": [1.5, -0.0, 2]}


def test_protocol_busy_does_not_burn_the_token_and_reactions_are_rate_limited():
    tokens = JoinTokens(SECRET)
    room = P.Room(tokens, max_friends=1)
    room.new_session("s1")
    a, _ = tokens.issue("s1", NOW)
    b, _ = tokens.issue("s1", NOW)
    fa = P.FriendProtocol(room, "a", NOW)
    fa.receive(json.dumps({"type": "join", "token": a, "name": "A"}), NOW)
    fb = P.FriendProtocol(room, "b", NOW)
    out = fb.receive(json.dumps({"type": "join", "token": b, "name": "B"}), NOW)
    assert out[0] == P.Send({"type": "error", "reason": "busy"})
    fa.admit()
    fa.receive(json.dumps({"type": "offer", "sdp": "v=0"}), NOW)
    sent = [fa.receive(json.dumps({"type": "reaction", "kind": "like"}), NOW + i * 0.1) for i in range(7)]
    assert sum(1 for out in sent if effects(out, P.Notify)) == P.REACTION_BURST
    assert effects(sent[-1], P.Send)[0].msg == {"type": "error", "reason": "rate_limited", "fatal": False}
    assert fa.phase is P.Phase.IN_CALL                                   # not a reason to drop her
    # the shopper leaves: her call ends, and links for her session die with it
    ended = room.new_session(None)
    assert ended == ["a"]
    fc = P.FriendProtocol(room, "c", NOW)
    assert fc.receive(json.dumps({"type": "join", "token": b, "name": "B"}), NOW)[0].msg["reason"] == "ended"


def test_protocol_join_timeout_closes_a_silent_socket():
    f = P.FriendProtocol(P.Room(JoinTokens(SECRET)), "c", NOW, join_timeout_s=5)
    assert f.tick(NOW + 4) == []
    assert f.tick(NOW + 6)[0] == P.Send({"type": "error", "reason": "timeout"})


def session():
    return Session(load_catalog(CONFIG_DIR / "catalog.toml"), {"thumbs_up": "confirm", "fist": "cancel",
                                                               "victory": "call_friend"})


def fire(s, gesture, t=1.0):
    return s.handle(Event("gesture.fired", {"gesture": gesture}, t))


def test_session_call_states_map_gestures_to_the_call():
    s = session()
    started = s.handle(Event("presence.changed", {"present": True}, 0.0))
    sid = started[0][1]["id"]
    assert fire(s, "victory")[-1] == ("call.requested", {"session": sid})
    s.handle(Event("call.knock", {"name": "Jane"}, 1.0))
    out = fire(s, "thumbs_up")
    assert ("call.admit", {"name": "Jane"}) in out and ("look.saved" not in [n for n, _ in out])
    s.handle(Event("call.admitted", {"name": "Jane"}, 2.0))
    assert fire(s, "victory")[-1] == ("call.hangup", {"reason": "shopper hung up"})
    s.handle(Event("call.ended", {"name": "Jane", "reason": "x"}, 3.0))
    assert s.in_call == "" and "ended" in s.message
    # a fist on the knock card declines
    s.handle(Event("call.knock", {"name": "Ann"}, 4.0))
    assert ("call.decline", {"name": "Ann"}) in fire(s, "fist")
    assert s.knocking == ""
    # with nobody knocking, thumbs-up is the ordinary confirm again
    assert any(n == "look.saved" for n, _ in fire(s, "thumbs_up"))
    # leaving wipes the session and gives the next shopper a new id
    ended = s.handle(Event("presence.changed", {"present": False}, 5.0))
    assert ended[0][1]["id"] == sid
    again = s.handle(Event("presence.changed", {"present": True}, 6.0))
    assert again[0][1]["id"] != sid


def test_only_the_shopper_lets_a_friend_in():
    """A command (control socket, staff, a script) cannot admit or decline:
    only her gesture or her own on-screen button can."""
    s = session()
    s.controls_on = True
    s.handle(Event("presence.changed", {"present": True}, 0.0))
    s.handle(Event("call.knock", {"name": "Eve"}, 1.0))
    for action in ("confirm", "cancel"):
        out = s.handle(Event("action.requested", {"action": action, "source": "control"}, 1.5))
        assert out == [] and s.knocking == "Eve"
    let_in = next(c for c in s.controls() if c.action == "confirm")
    x, y, w, h = let_in.rect
    out = s.handle(Event("cursor.dwell", {"x": x + w / 2, "y": y + h / 2, "control": let_in.id}, 2.0))
    assert ("call.admit", {"name": "Eve"}) in out


def test_timecode_survives_scaling_and_compression():
    img = np.full((720, 1280, 3), 90, np.uint8)
    for ms in (0, 123456789, 2**32 - 1, 1_795_531_289_854):
        out = img.copy()
        stamp_timecode(out, ms)
        ok, jpg = cv2.imencode(".jpg", cv2.resize(out, (960, 540)), [cv2.IMWRITE_JPEG_QUALITY, 40])
        back = read_timecode(cv2.resize(cv2.imdecode(jpg, cv2.IMREAD_COLOR), (1280, 720)))
        assert back == ms & 0xFFFFFFFF
    noise = np.random.default_rng(0).integers(0, 255, (720, 1280, 3), np.uint8)
    assert read_timecode(noise) is None or isinstance(read_timecode(noise), int)
    assert read_timecode(np.zeros((720, 1280, 3), np.uint8)) is None     # the check byte catches a blank


def test_portrait_mirror_is_letterboxed_into_the_landscape_call():
    portrait = np.full((1920, 1080, 4), 200, np.uint8)
    out = fit_into(portrait, 1280, 720)
    assert out.shape == (720, 1280, 4)
    assert out[:, 640].min() == 200 and out[:, 10].max() == 0


def test_call_config_is_checked():
    with pytest.raises(ConfigError) as e:
        build({"call": {"host": "10.0.0.5", "codecs": "VP9", "public_url": "ftp://x", "tls_cert": "nope.pem"}},
              env={})
    text = " | ".join(e.value.problems)
    assert "call.tls_key" in text and "call.codecs" in text and "call.public_url" in text
    assert "call.tls_cert: file 'nope.pem' not found" in text
    with pytest.raises(ConfigError) as e:
        build({"call": {"host": "10.0.0.5"}}, env={})
    assert "https" in e.value.problems[0]
    with pytest.raises(ConfigError) as e:                                # interfaces or addresses, not subnets
        build({"call": {"ice_interfaces": "eth0, 192.168.1.0/24"}}, env={})
    assert e.value.problems == ["call.ice_interfaces: got '192.168.1.0/24', expected interface names (eth0) or IP "
                                "addresses (192.168.1.20), comma-separated"]
    assert build({"call": {"ice_interfaces": "eth0, wlp2s0,192.168.1.20 ,fd00::2"}}, env={}).call.ice_interfaces


def test_a_hang_up_tells_the_friend_why_before_the_media_stops():
    # a browser whose peer connection drops first would say "connection lost"
    tokens = JoinTokens(SECRET)
    room = P.Room(tokens)
    room.new_session("s1")
    f = P.FriendProtocol(room, "c1", NOW)
    tok, _ = tokens.issue("s1", NOW)
    f.receive(json.dumps({"type": "join", "token": tok, "name": "Jane"}), NOW)
    f.admit()
    f.receive(json.dumps({"type": "offer", "sdp": "v=0"}), NOW)
    out = f.hang_up("shopper hung up")
    assert out.index(P.Send({"type": "ended", "reason": "shopper hung up"})) < out.index(P.StopPeer())
    assert out.index(P.StopPeer()) < out.index(P.Close("shopper hung up"))
