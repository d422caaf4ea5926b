"""Reading a tap: the UID and the NDEF message of an NFC Forum Type 4 tag.

This module speaks APDUs through a `transmit(apdu) -> (data, sw)` function, so
the same code reads a card through pcscd (nfc.readers) or anything else.

Type 4 tag reading (NFC Forum T4T 2.0/3.0, with the 1.0 fallback):

1. SELECT the NDEF application by AID D2760000850101 (v2, with Le),
   falling back to the v1 AID D2760000850100;
2. SELECT the Capability Container file E103 (P1P2 000C; 0000 for v1 tags),
   READ BINARY it and parse MLe, MLc, the NDEF file id, its maximum size and
   read access (the 04 NDEF File Control TLV, or 06 for the extended one);
3. SELECT the NDEF file, READ BINARY its 2-byte NLEN, then the message in
   chunks of at most MLe bytes (and at most 255, the short-APDU limit);
4. decode the records with ndeflib (`ndef.message_decoder`).

A card that goes away in the middle raises `CardRemovedError`, and nothing
read so far is returned: a partial NDEF message is never used.
"""

from __future__ import annotations

import struct
import urllib.parse
from dataclasses import dataclass, field
from typing import Callable

import ndef

from mirror.core.text import printable

Transmit = Callable[[bytes], tuple[bytes, int]]

NDEF_AID_V2 = bytes.fromhex("D2760000850101")
NDEF_AID_V1 = bytes.fromhex("D2760000850100")
CC_FILE_ID = 0xE103
GET_UID = bytes.fromhex("FFCA000000")
SHORT_LE_MAX = 255            # READ BINARY with a 1-byte Le; offsets up to 0x7FFF

# How the mirror finds a member id on a tag (see README, "NFC checkout"):
MEMBER_RECORD_TYPE = "urn:nfc:ext:store.example:member"


class TagError(Exception):
    """The tag could not be read; the message says why, in shopper-safe words."""


class CardRemovedError(TagError):
    """The card left the reader before the read finished (no partial result)."""


class TagFormatError(TagError):
    """The tag answered, but its Type 4 / NDEF data is not valid."""


@dataclass
class CapabilityContainer:
    version: int
    mle: int
    mlc: int
    file_id: int
    max_size: int
    read_access: int
    write_access: int
    extended: bool = False


@dataclass
class TagRead:
    uid: bytes
    ndef_message: bytes | None = None        # None: no NDEF application on the card
    records: list = field(default_factory=list)
    cc: CapabilityContainer | None = None


def _check(data: bytes, sw: int, what: str) -> bytes:
    if sw != 0x9000:
        raise TagFormatError(f"{what} failed with status {sw:04X}")
    return data


UID_BYTES = (4, 10)   # ISO 14443 UIDs are 4, 7 or 10 bytes, a FeliCa IDm or an ISO 15693 UID 8


def read_uid(transmit: Transmit) -> bytes:
    uid = _check(*transmit(GET_UID), "GET DATA (UID)")
    if not UID_BYTES[0] <= len(uid) <= UID_BYTES[1]:
        # no card has it: every such card would be one customer to the order journal
        raise TagFormatError(f"GET DATA (UID) gave {len(uid)} bytes, not {UID_BYTES[0]}-{UID_BYTES[1]}")
    return uid


def _select_file(transmit: Transmit, fid: int, v1: bool) -> int:
    p2 = 0x00 if v1 else 0x0C
    _, sw = transmit(bytes([0x00, 0xA4, 0x00, p2, 0x02]) + struct.pack(">H", fid))
    if sw != 0x9000 and not v1:
        # Some v2 tags only know the v1 form of SELECT.
        _, sw = transmit(bytes([0x00, 0xA4, 0x00, 0x00, 0x02]) + struct.pack(">H", fid))
    return sw


def _read_binary(transmit: Transmit, offset: int, length: int) -> bytes:
    if offset > 0x7FFF:
        raise TagFormatError(f"NDEF data beyond offset 0x7FFF ({offset}) needs extended READ BINARY")
    data, sw = transmit(bytes([0x00, 0xB0, offset >> 8, offset & 0xFF, length & 0xFF]))
    if sw >> 8 == 0x6C:                       # wrong Le: the card says the right one
        data, sw = transmit(bytes([0x00, 0xB0, offset >> 8, offset & 0xFF, sw & 0xFF]))
    _check(data, sw, f"READ BINARY at {offset}")
    if not data:
        raise TagFormatError(f"READ BINARY at {offset} returned no data")
    return data[:length]


def parse_cc(raw: bytes) -> CapabilityContainer:
    if len(raw) < 15:
        raise TagFormatError(f"capability container too short ({len(raw)} bytes)")
    cclen, version, mle, mlc = struct.unpack(">HBHH", raw[:7])
    if cclen < 15:
        raise TagFormatError(f"capability container length {cclen} < 15")
    t, ln = raw[7], raw[8]
    if t == 0x04 and ln >= 6:
        fid, max_size, ra, wa = struct.unpack(">HHBB", raw[9:15])
        ext = False
    elif t == 0x06 and ln >= 8 and len(raw) >= 17:
        fid, max_size, ra, wa = struct.unpack(">HIBB", raw[9:17])
        ext = True
    else:
        raise TagFormatError(f"capability container has no NDEF File Control TLV (tag {t:02X})")
    if version >> 4 not in (1, 2, 3):
        raise TagFormatError(f"unsupported Type 4 mapping version {version >> 4}.{version & 15}")
    if mle < 1:
        raise TagFormatError("capability container MLe is 0")
    if fid in (0x0000, 0xE102, 0xE103, 0x3F00, 0x3FFF, 0xFFFF):
        raise TagFormatError(f"capability container names an invalid NDEF file id {fid:04X}")
    return CapabilityContainer(version, mle, mlc, fid, max_size, ra, wa, ext)


def read_ndef(transmit: Transmit) -> tuple[bytes | None, CapabilityContainer | None]:
    """The raw NDEF message, or (None, None) when the card has no NDEF application."""
    v1 = False
    _, sw = transmit(bytes([0x00, 0xA4, 0x04, 0x00, 0x07]) + NDEF_AID_V2 + b"\x00")
    if sw >> 8 in (0x67, 0x6C):                 # a tag that wants the SELECT without Le
        _, sw = transmit(bytes([0x00, 0xA4, 0x04, 0x00, 0x07]) + NDEF_AID_V2)
    if sw != 0x9000:
        _, sw = transmit(bytes([0x00, 0xA4, 0x04, 0x00, 0x07]) + NDEF_AID_V1)
        if sw != 0x9000:
            return None, None
        v1 = True
    if _select_file(transmit, CC_FILE_ID, v1) != 0x9000:
        raise TagFormatError("the NDEF application has no capability container (E103)")
    head = _read_binary(transmit, 0, 15)
    cclen = struct.unpack(">H", head[:2])[0] if len(head) >= 2 else 0
    raw_cc = head
    while len(raw_cc) < min(cclen, 17 if head[7:8] == b"\x06" else 15):
        raw_cc += _read_binary(transmit, len(raw_cc), min(cclen, 17) - len(raw_cc))
    cc = parse_cc(raw_cc)
    if cc.read_access != 0x00:
        raise TagFormatError(f"the NDEF file is read-protected (access {cc.read_access:02X})")
    if _select_file(transmit, cc.file_id, v1) != 0x9000:
        raise TagFormatError(f"the NDEF file {cc.file_id:04X} named by the capability container is missing")
    chunk = max(1, min(cc.mle, SHORT_LE_MAX))
    nlen_size = 4 if cc.extended else 2
    raw_len = _read_binary(transmit, 0, nlen_size)
    while len(raw_len) < nlen_size:
        raw_len += _read_binary(transmit, len(raw_len), nlen_size - len(raw_len))
    nlen = int.from_bytes(raw_len, "big")
    if nlen > cc.max_size - nlen_size:
        raise TagFormatError(f"NDEF length {nlen} exceeds the file size {cc.max_size}")
    message = bytearray()
    while len(message) < nlen:
        part = _read_binary(transmit, nlen_size + len(message), min(chunk, nlen - len(message)))
        message += part
    return bytes(message), cc


def decode_records(message: bytes) -> list:
    if not message:
        return []
    try:
        return list(ndef.message_decoder(message, errors="strict"))
    except ndef.DecodeError as e:
        raise TagFormatError(f"the NDEF message is malformed ({e})") from None


def read_tag(transmit: Transmit) -> TagRead:
    """UID first (every card has one), then NDEF when the card is a Type 4 tag."""
    uid = read_uid(transmit)
    message, cc = read_ndef(transmit)
    records = decode_records(message) if message is not None else []
    return TagRead(uid, message, records, cc)


# --- presenting records ----------------------------------------------------
def record_tnf(rec) -> int:
    return ndef.Record._encode_type(rec.type)[0]


def record_json(rec) -> dict:
    """The `mirror nfc read --json` shape of one record."""
    out = {"tnf": record_tnf(rec), "type": rec.type, "payload_hex": bytes(rec.data).hex()}
    if isinstance(rec, ndef.TextRecord):
        out["text"] = rec.text
    elif isinstance(rec, ndef.UriRecord):
        out["uri"] = rec.iri
    elif isinstance(rec, ndef.SmartposterRecord) and rec.resource is not None:
        out["uri"] = rec.resource.iri
    return out


@dataclass(frozen=True)
class Member:
    id: str
    name: str = ""        # shown on screen only, never stored


MEMBER_ID_MAX = 64     # longer is no member id of ours: the tap goes on as an unnamed card
MEMBER_NAME_MAX = 40   # shown on screen only, so simply cut


def _member(mid: str, name: str = "") -> Member | None:
    mid = printable(mid)
    if not mid or len(mid) > MEMBER_ID_MAX:
        return None
    return Member(mid, printable(name)[:MEMBER_NAME_MAX])


def _from_form(text: str) -> Member | None:
    text = text.strip()
    if not text:
        return None
    if "=" not in text:
        return _member(text)
    q = urllib.parse.parse_qs(text)
    return _member((q.get("id") or q.get("member") or [""])[0], (q.get("name") or [""])[0])


def member_from_records(records: list, record_type: str = MEMBER_RECORD_TYPE) -> Member | None:
    """The loyalty member id carried by the tag, if any.

    In order of preference:
    * an external record of `record_type` whose payload is the id, or a
      form-encoded `id=M123&name=Jenny`;
    * a URI record with a `member=` query parameter (and optional `name=`);
    * a Text record `member:M123`.
    """
    for rec in records:
        if rec.type == record_type:
            try:
                m = _from_form(bytes(rec.data).decode("utf-8"))
            except UnicodeDecodeError:
                m = None
            if m:
                return m
    for rec in records:
        if isinstance(rec, ndef.UriRecord):
            q = urllib.parse.parse_qs(urllib.parse.urlsplit(rec.iri).query)
            if (m := _member(q.get("member", [""])[0], q.get("name", [""])[0])) is not None:
                return m
    for rec in records:
        if isinstance(rec, ndef.TextRecord) and rec.text.lower().startswith("member:"):
            if (m := _member(rec.text.split(":", 1)[1])) is not None:
                return m
    return None
