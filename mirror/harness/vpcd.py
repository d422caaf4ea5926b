"""Virtual cards for Debian's vsmartcard-vpcd reader driver.

vpcd (loaded by pcscd) listens on a TCP port (35963 for its first slot, the
next port for the second). A virtual card *connects* to it and then speaks a
tiny framing protocol:

* every frame is a 2-byte big-endian length followed by the data;
* a 1-byte frame is a control code: 00 power off, 01 power on, 02 reset,
  04 get ATR. Only 04 is answered (with the ATR);
* a longer frame is a command APDU, answered with the response APDU;
* an open socket means the card is on the reader; closing it removes it.

The cards here are used by the tests and by `mirror bench-checkout`:

* `Card(uid)`: a plain card that only answers GET DATA (FF CA 00 00 00)
  with its UID, like a contactless card without NDEF;
* `Type4Tag(uid, message)`: an NFC Forum Type 4 tag (mapping version 2.0 or
  1.0) with a Capability Container (E103) and an NDEF file, answering
  SELECT by AID and by file id, READ BINARY (at most MLe bytes per answer)
  and GET DATA;
* `pull_after_reads=N`: the card is pulled away (the socket is closed without
  an answer) when the N-th READ BINARY of the NDEF file arrives, the way a
  shopper lifts her phone halfway through a read.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time

log = logging.getLogger(__name__)

VPCD_HOST = "127.0.0.1"
VPCD_PORT = 35963
# The ATR a PC/SC reader builds for an ISO 14443-4 card with no historical
# bytes: T=0 then T=1 indicated, TCK = XOR of T0..TD2.
DEFAULT_ATR = bytes.fromhex("3B80800101")

NDEF_AID_V2 = bytes.fromhex("D2760000850101")
NDEF_AID_V1 = bytes.fromhex("D2760000850100")
CC_FILE = 0xE103

SW_OK = b"\x90\x00"
SW_NOT_FOUND = b"\x6a\x82"
SW_WRONG_P1P2 = b"\x6b\x00"
SW_INS_NOT_SUPPORTED = b"\x6d\x00"
SW_CLA_NOT_SUPPORTED = b"\x6e\x00"
SW_NO_EF = b"\x69\x86"
SW_WRONG_LENGTH = b"\x67\x00"


class Card:
    """A card with a UID and nothing else (answers GET DATA only)."""

    def __init__(self, uid: bytes, atr: bytes = DEFAULT_ATR, *, pull_after_apdus: int | None = None):
        self.uid = bytes(uid)
        self.atr = bytes(atr)
        self.pull_after_apdus = pull_after_apdus   # pulled when this many APDUs have arrived
        self.apdus: list[bytes] = []          # every command APDU received, for tests
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.connected_at: float | None = None  # time.monotonic() of the socket connect
        self.pulled = threading.Event()        # set when the card pulled itself mid-read
        self.closed = threading.Event()

    # --- APDU handling ---------------------------------------------------
    def answer(self, apdu: bytes) -> bytes | None:
        """The response APDU, or None to pull the card (close without answering)."""
        if len(apdu) >= 4 and apdu[0] == 0xFF and apdu[1] == 0xCA:
            if apdu[2] == 0x00:
                return self.uid + SW_OK
            return SW_WRONG_P1P2
        if len(apdu) >= 4 and apdu[1] == 0xA4:
            return SW_NOT_FOUND
        return SW_INS_NOT_SUPPORTED

    # --- the vpcd connection ---------------------------------------------
    def insert(self, host: str = VPCD_HOST, port: int = VPCD_PORT, timeout: float = 5.0) -> "Card":
        """Put the card on the reader: connect to vpcd and serve it on a thread."""
        if self._sock is not None:
            raise RuntimeError("card is already on a reader")
        self.pulled.clear()
        self.closed.clear()
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(None)
        self.connected_at = time.monotonic()
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, args=(sock,), name="vpcd-card", daemon=True)
        self._thread.start()
        return self

    def remove(self) -> None:
        """Take the card off the reader (close the socket)."""
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)
        self._thread = None

    @property
    def present(self) -> bool:
        return self._sock is not None and not self.closed.is_set()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()

    def _serve(self, sock: socket.socket) -> None:
        try:
            while True:
                frame = _recv_frame(sock)
                if frame is None:
                    return
                if len(frame) == 1:
                    if frame[0] == 0x04:
                        sock.sendall(struct.pack(">H", len(self.atr)) + self.atr)
                    else:
                        self.on_control(frame[0])
                    continue
                self.apdus.append(frame)
                pull = self.pull_after_apdus is not None and len(self.apdus) >= self.pull_after_apdus
                resp = None if pull else self.answer(frame)
                if resp is None:             # pulled away mid-exchange
                    self.pulled.set()
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    sock.close()
                    return
                sock.sendall(struct.pack(">H", len(resp)) + resp)
        except OSError:
            return
        finally:
            self.closed.set()

    def on_control(self, code: int) -> None:
        """Power off (00), on (01) or reset (02): a card forgets its selection."""


class Type4Tag(Card):
    """An NFC Forum Type 4 tag holding an NDEF message.

    `message` is the encoded NDEF message (bytes). `mle` is the largest READ
    BINARY answer the tag allows (the CC's MLe; 0x3B is a common small value
    that forces many chunks). `version` 2 answers the v2 AID D2760000850101,
    version 1 only the v1 AID D2760000850100 and SELECT with P1P2 = 0000.
    """

    def __init__(self, uid: bytes, message: bytes, *, mle: int = 0xFF, mlc: int = 0xFF,
                 version: int = 2, file_id: int = 0xE104, max_size: int | None = None,
                 read_access: int = 0x00, pull_after_reads: int | None = None, atr: bytes = DEFAULT_ATR,
                 pull_after_apdus: int | None = None, select_with_le: bool = True):
        super().__init__(uid, atr, pull_after_apdus=pull_after_apdus)
        self.select_with_le = select_with_le    # False: SELECT with an Le byte gets 6700, like some tags
        self.mle, self.mlc, self.version, self.file_id = mle, mlc, version, file_id
        self.nlen_file = struct.pack(">H", len(message)) + bytes(message)
        self.max_size = max_size if max_size is not None else max(len(self.nlen_file), 0x80)
        self.read_access = read_access
        self.pull_after_reads = pull_after_reads
        self.ndef_reads = 0
        self._app_selected = False
        self._selected: int | None = None

    @property
    def cc(self) -> bytes:
        ver = 0x20 if self.version == 2 else 0x10
        tlv = bytes([0x04, 0x06]) + struct.pack(">HHBB", self.file_id, self.max_size, self.read_access, 0x00)
        body = bytes([ver]) + struct.pack(">HH", self.mle, self.mlc) + tlv
        return struct.pack(">H", 2 + len(body)) + body

    def on_control(self, code: int) -> None:
        self._app_selected = False
        self._selected = None

    def answer(self, apdu: bytes) -> bytes | None:
        cla, ins, p1, p2 = apdu[0], apdu[1], apdu[2], apdu[3]
        if cla == 0xFF:
            return super().answer(apdu)
        if cla != 0x00:
            return SW_CLA_NOT_SUPPORTED
        if ins == 0xA4:
            return self._select(p1, p2, apdu[4:])
        if ins == 0xB0:
            return self._read_binary(p1, p2, apdu[4:])
        return SW_INS_NOT_SUPPORTED

    def _select(self, p1: int, p2: int, rest: bytes) -> bytes:
        if not rest:
            return SW_WRONG_LENGTH
        lc = rest[0]
        data = rest[1:1 + lc]
        if len(data) != lc or (not self.select_with_le and len(rest) > 1 + lc):
            return SW_WRONG_LENGTH
        if p1 == 0x04:                         # by AID (DF name)
            want = NDEF_AID_V2 if self.version == 2 else NDEF_AID_V1
            if data == want:
                self._app_selected = True
                self._selected = None
                return SW_OK
            self._app_selected = False
            return SW_NOT_FOUND
        if p1 == 0x00:                         # by file id
            if self.version == 2 and p2 != 0x0C or self.version == 1 and p2 != 0x00:
                return SW_WRONG_P1P2
            if not self._app_selected or lc != 2:
                return SW_NOT_FOUND
            fid = struct.unpack(">H", data)[0]
            if fid in (CC_FILE, self.file_id):
                self._selected = fid
                return SW_OK
            return SW_NOT_FOUND
        return SW_WRONG_P1P2

    def _read_binary(self, p1: int, p2: int, rest: bytes) -> bytes | None:
        if self._selected is None:
            return SW_NO_EF
        offset = (p1 << 8) | p2
        le = rest[0] if rest else 0
        le = 256 if le == 0 else le
        content = self.cc if self._selected == CC_FILE else self.nlen_file
        if self._selected == self.file_id:
            if le > self.mle:                   # the reader must respect MLe
                return SW_WRONG_LENGTH
            self.ndef_reads += 1
            if self.pull_after_reads is not None and self.ndef_reads >= self.pull_after_reads:
                return None
        if offset > len(content):
            return SW_WRONG_P1P2
        return content[offset:offset + le] + SW_OK


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        # vpcd writes the length and the body of a frame separately; without a
        # quick ACK, Nagle on its side and delayed ACK on ours cost ~40 ms per APDU.
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        except (OSError, AttributeError):
            pass
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def _recv_frame(sock: socket.socket) -> bytes | None:
    head = _recv_exact(sock, 2)
    if head is None:
        return None
    (n,) = struct.unpack(">H", head)
    return _recv_exact(sock, n) if n else b""
