"""ICE host candidates only from the configured addresses: the pure address
choice, aioice's address list as the kiosk's wrapper narrows it, and a real
aiortc offer/answer made in-process (no packet is sent: no STUN, nothing
connects) whose answer carries only the chosen addresses."""

import asyncio
import logging

import aioice.ice
import ifaddr
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from call import rtc
from call.media import FriendVideo, LatestFrame


def adapter(name: str, *ips) -> ifaddr.Adapter:
    return ifaddr.Adapter(name, name, [ifaddr.IP(ip, 8 if isinstance(ip, str) else 64, name) for ip in ips])


# a kiosk's interfaces: the test namespace's lo (127.0.0.2 beside 127.0.0.1), a LAN, a Wi-Fi
MACHINE = [adapter("lo", "127.0.0.1", "127.0.0.2", ("::1", 0, 0)),
           adapter("eth0", "192.168.1.20", ("fe80::1", 0, 2), ("2001:db8::20", 0, 0)),
           adapter("wlan0", "10.0.0.5")]


def no_dns(host):
    raise AssertionError(f"resolved {host!r}")


def test_ice_addresses_follow_call_host_or_ice_interfaces(caplog):
    pick = lambda host, interfaces="", resolve=no_dns: rtc.ice_addresses(host, interfaces, MACHINE,  # noqa: E731
                                                                           resolve=resolve)
    # call.host's interface, all of its addresses (aioice then leaves out 127.0.0.1 and ::1 itself)
    assert pick("127.0.0.1", resolve=rtc._resolve) == ["127.0.0.1", "127.0.0.2", "::1"]
    assert pick("127.0.0.2", resolve=rtc._resolve) == ["127.0.0.1", "127.0.0.2", "::1"]
    assert pick("192.168.1.20", resolve=rtc._resolve) == ["192.168.1.20", "fe80::1", "2001:db8::20"]
    assert pick("[2001:db8::20]", resolve=rtc._resolve) == ["192.168.1.20", "fe80::1", "2001:db8::20"]
    assert pick("mirror.local", resolve=lambda h: {"10.0.0.5"}) == ["10.0.0.5"]
    assert pick("192.168.7.7", resolve=rtc._resolve) == []                 # on no interface here: nothing
    # a wildcard host: every address but loopback
    for wildcard in ("0.0.0.0", "::", "[::]", ""):
        assert pick(wildcard) == ["192.168.1.20", "fe80::1", "2001:db8::20", "10.0.0.5"]
    # call.ice_interfaces wins over call.host: names and addresses, in order, once each
    assert pick("0.0.0.0", "wlan0") == ["10.0.0.5"]
    assert pick("127.0.0.1", " eth0 , 10.0.0.5,192.168.1.20") == ["192.168.1.20", "fe80::1", "2001:db8::20", "10.0.0.5"]
    assert pick("127.0.0.1", "2001:DB8:0::20") == ["2001:db8::20"]
    with caplog.at_level(logging.WARNING, logger="call.rtc"):
        assert pick("0.0.0.0", "eth7") == []
    assert "eth7" in caplog.text


def test_aioice_offers_only_the_allowed_addresses(monkeypatch):
    monkeypatch.setattr(ifaddr, "get_adapters", lambda *a, **k: MACHINE)
    assert aioice.ice.get_host_addresses(True, True) == ["127.0.0.2", "192.168.1.20", "2001:db8::20", "10.0.0.5"]
    token = rtc._ALLOWED.set(frozenset(rtc.ice_addresses("127.0.0.1", "")))
    try:
        assert aioice.ice.get_host_addresses(True, True) == ["127.0.0.2"]   # call.host 127.0.0.1 in the namespace
    finally:
        rtc._ALLOWED.reset(token)
    token = rtc._ALLOWED.set(frozenset(rtc.ice_addresses("127.0.0.1", "eth0")))
    try:
        assert aioice.ice.get_host_addresses(True, False) == ["192.168.1.20"]
    finally:
        rtc._ALLOWED.reset(token)
    assert aioice.ice.get_host_addresses(True, True)[0] == "127.0.0.2"     # unchanged outside a call's answer


# loopback addresses only (any 127.x binds on Linux), dressed up as three interfaces
LOOPBACK_MACHINE = [adapter("lo", "127.0.0.1", "127.0.0.2", "127.0.0.3", ("::1", 0, 0)),
                    adapter("eth0", "127.0.0.4"), adapter("wlan0", "127.0.0.5")]


def make_peer(**ice) -> rtc.Peer:
    return rtc.Peer(slot=LatestFrame(), width=320, height=240, fps=15, codecs=["VP8"], timecode=False,
                    friend_video=FriendVideo(64), audio_output="none", **ice)


async def answer_candidates(**ice) -> tuple[list[str], list[str]]:
    browser = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    peer = make_peer(**ice)
    try:
        browser.addTransceiver("video", direction="sendrecv")
        await browser.setLocalDescription(await browser.createOffer())
        offer = browser.localDescription.sdp
        return rtc.candidate_addresses(offer), rtc.candidate_addresses(await peer.answer(offer))
    finally:
        await peer.close()
        await browser.close()


@pytest.mark.parametrize("ice,expected", [
    ({"ice_host": "127.0.0.1"}, {"127.0.0.2", "127.0.0.3"}),                  # lo's, less what aioice drops
    ({"ice_host": "127.0.0.4"}, {"127.0.0.4"}),
    ({"ice_host": "127.0.0.1", "ice_interfaces": "wlan0"}, {"127.0.0.5"}),
    ({"ice_host": "0.0.0.0", "ice_interfaces": "127.0.0.3, eth0"}, {"127.0.0.3", "127.0.0.4"}),
    ({"ice_host": "localhost"}, {"127.0.0.2", "127.0.0.3"}),
    ({}, {"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"}),                 # no ice_host: aioice's own list
])
def test_the_kiosks_answer_carries_only_the_selected_addresses(monkeypatch, ice, expected):
    monkeypatch.setattr(ifaddr, "get_adapters", lambda *a, **k: LOOPBACK_MACHINE)
    offered, answered = asyncio.run(answer_candidates(**ice))
    assert set(offered) == {"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"}   # the offerer is not limited
    assert answered and set(answered) == expected


def test_an_answer_with_a_stray_candidate_is_refused(monkeypatch):
    """Fail closed: should a future aioice gather some other way, the kiosk
    refuses the call rather than offer addresses it was told not to."""
    monkeypatch.setattr(ifaddr, "get_adapters", lambda *a, **k: LOOPBACK_MACHINE)
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.2", "127.0.0.4"])
    with pytest.raises(rtc.OfferError, match="127.0.0.2"):
        asyncio.run(answer_candidates(ice_host="127.0.0.4"))
