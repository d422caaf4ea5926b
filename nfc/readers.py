"""Watching PC/SC readers and cards with pyscard, supervised.

pyscard's CardMonitor runs a thread that dies when pcscd goes away. Instead
`ReaderWatcher` runs its own loop over `SCardGetStatusChange` (with a short
timeout, plus the `\\\\?PnP?\\Notification` pseudo reader for hot-plug), and
when pcscd stops or restarts (SCARD_E_NO_SERVICE, SCARD_E_SERVICE_STOPPED, an
invalid context ...) it releases the context and establishes a new one with
exponential backoff. It never gives up.

On a new card it reads the UID and the Type 4 NDEF message (nfc.type4) on a
thread of its own (`_ReadJob`), so a card that stalls inside a command holds
up no other reader, and gives up on it at READ_DEADLINE_S; then it reports a
tap. A card that leaves in the middle is reported as `read_failed` with reason
"removed", never as a partial tap. Everything goes out through one callback
`emit(kind, **data)`, called from the watcher's and the read threads. On one
reader, a card that was read has its `tap` or `read_failed` before its
`removed`; one lifted while it waited for the reader gets `removed` only. The
watcher waits for pcscd only until the next read's deadline, so a stalled card
is given up on at its deadline whatever the poll. Kinds:

* `status`: ok (bool), message (str), readers (list)
* `tap`: reader, uid (bytes), records (ndeflib records), t_present (the
  monotonic time SCardGetStatusChange returned with the card), t_read
* `read_failed`: reader, reason ("removed" or "error"), message, t_present
* `removed`: reader
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

from smartcard import scard as S

from mirror.core.backoff import Backoff
from nfc.type4 import CardRemovedError, TagError, TagFormatError, TagRead, read_tag

log = logging.getLogger(__name__)

PNP = "\\\\?PnP?\\Notification"

SERVICE_LOST = {S.SCARD_E_NO_SERVICE, S.SCARD_E_SERVICE_STOPPED, S.SCARD_E_INVALID_HANDLE,
                S.SCARD_F_COMM_ERROR, S.SCARD_F_INTERNAL_ERROR, S.SCARD_E_NO_MEMORY}
READERS_CHANGED = {S.SCARD_E_UNKNOWN_READER, S.SCARD_E_READER_UNAVAILABLE, S.SCARD_E_NO_READERS_AVAILABLE}

NO_READER_MESSAGE = "no PC/SC reader found; is pcscd running and the reader plugged in?"


class PcscError(Exception):
    def __init__(self, what: str, hr: int):
        self.hr = hr
        super().__init__(f"{what}: {S.SCardGetErrorMessage(hr).strip()} (0x{hr & 0xFFFFFFFF:08X})")


READ_DEADLINE_S = 4.0   # a whole read (a 30 KB tag takes about 2 s); a slower card is given up on


WAITING_CHECK_S = 0.05  # how soon to look again whether a waiting card's reader is free


def too_slow() -> str:
    return f"the card answered too slowly (no whole read within {READ_DEADLINE_S:g} s)"


def pcsc_transmit(card, protocol, deadline: float | None = None) -> Callable[[bytes], tuple[bytes, int]]:
    """A `transmit` for nfc.type4 over a connected PC/SC card handle. Past
    `deadline` (monotonic) no further command is sent."""
    def transmit(apdu: bytes) -> tuple[bytes, int]:
        if deadline is not None and time.monotonic() > deadline:
            raise TagError(too_slow())
        hr, resp = S.SCardTransmit(card, protocol, list(apdu))
        if hr != S.SCARD_S_SUCCESS:
            # Whatever the exact code (removed, reset, comm error), for the shopper
            # the card left before the read finished: tap again.
            raise CardRemovedError(f"card went away during the read ({PcscError('transmit', hr)})")
        if not resp:
            # vpcd answers an empty response when the card's socket closed mid-APDU.
            raise CardRemovedError(f"card went away during the read (empty response to {apdu[:4].hex()})")
        if len(resp) < 2:
            raise TagFormatError(f"the card answered {apdu[:4].hex()} with {len(resp)} byte, no status word")
        return bytes(resp[:-2]), (resp[-2] << 8) | resp[-1]
    return transmit


def read_card(ctx, reader: str, deadline: float | None = None) -> TagRead:
    """Connect to the card on `reader`, read it within `deadline` (monotonic;
    default READ_DEADLINE_S from now), disconnect."""
    if deadline is None:
        deadline = time.monotonic() + READ_DEADLINE_S
    hr, card, proto = S.SCardConnect(ctx, reader, S.SCARD_SHARE_SHARED, S.SCARD_PROTOCOL_T0 | S.SCARD_PROTOCOL_T1)
    if hr != S.SCARD_S_SUCCESS:
        if hr in SERVICE_LOST:
            raise PcscError("connect", hr)
        raise CardRemovedError(f"card went away before it could be read ({PcscError('connect', hr)})")
    try:
        return read_tag(pcsc_transmit(card, proto, deadline))
    finally:
        S.SCardDisconnect(card, S.SCARD_LEAVE_CARD)


class _ReadJob:
    """One card's read, on its own thread with its own PC/SC context (pcsc-lite
    serialises the calls on one context, and the watcher's sits in
    SCardGetStatusChange). Its outcome is emitted once: by the thread when the
    read ends, or by the watcher when the deadline passes first; a late answer
    is then dropped."""

    def __init__(self, reader: str, t_present: float):
        self.reader = reader
        self.t_present = t_present
        self.deadline = time.monotonic() + READ_DEADLINE_S
        self.lock = threading.Lock()
        self.settled = False        # its outcome has been emitted
        self.removed = False        # the card left before that: "removed" follows the outcome
        self.thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()


@dataclass
class _Reader:
    state: int = S.SCARD_STATE_UNAWARE
    present: bool = False


class ReaderWatcher:
    """Supervised reader and card watching on its own thread."""

    def __init__(self, emit: Callable[..., None], *, reader_filter: str = "", poll_s: float = 0.5,
                 backoff_initial_s: float = 0.2, backoff_max_s: float = 5.0):
        self.emit = emit
        self.reader_filter = reader_filter.lower()
        self.poll_ms = max(10, int(poll_s * 1000))
        self.backoff_initial = backoff_initial_s
        self.backoff_max = backoff_max_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # by reader name, touched by the watcher thread only; kept when pcscd restarts,
        # so a read under way then is still given up on at its deadline
        self._jobs: dict[str, _ReadJob] = {}          # each until its thread has ended
        self._waiting: dict[str, tuple[float, float]] = {}   # a card to read once the last read's
        #                                                      thread ends: (t_present, give up at)
        self._ctx = None
        self._status: tuple[bool, str] | None = None
        self.contexts = 0            # how many times a context was (re)established, for tests

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="nfc-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        ctx = self._ctx
        if ctx is not None:
            try:
                S.SCardCancel(ctx)
            except Exception:
                pass
        if self._thread is not None:
            self._thread.join(timeout=3)
        # a read thread blocked inside a command cannot be interrupted (SCardCancel
        # ends only a status wait): give them a moment, then leave them (daemons)
        give_up = time.monotonic() + 1.0
        for job in list(self._jobs.values()):
            if job.thread is not None:
                job.thread.join(timeout=max(0.0, give_up - time.monotonic()))

    def _set_status(self, ok: bool, message: str, readers: list[str] | None = None) -> None:
        if self._status != (ok, message):
            self._status = (ok, message)
            (log.info if ok else log.warning)("NFC: %s", message)
            self.emit("status", ok=ok, message=message, readers=readers or [])

    def run(self) -> None:
        backoff = Backoff(self.backoff_initial, self.backoff_max)
        while not self._stop.is_set():
            hr, ctx = S.SCardEstablishContext(S.SCARD_SCOPE_USER)
            if hr != S.SCARD_S_SUCCESS:
                self._set_status(False, "NFC reader unavailable: the PC/SC service (pcscd) is not running")
                self._stop.wait(backoff.next())
                continue
            self._ctx = ctx
            self.contexts += 1
            started = time.monotonic()
            try:
                reason = self._watch(ctx)
            except Exception as e:             # never let the watcher die
                log.exception("NFC watcher failed")
                reason = f"NFC reader unavailable: {e}"
            finally:
                self._ctx = None
                try:
                    S.SCardReleaseContext(ctx)
                except Exception:
                    pass
            if self._stop.is_set():
                break
            self._set_status(False, reason)
            if time.monotonic() - started > 10:
                backoff.reset()
            self._stop.wait(backoff.next())

    def _list(self, ctx) -> list[str] | str:
        hr, readers = S.SCardListReaders(ctx, [])
        if hr in SERVICE_LOST:
            return "NFC reader unavailable: the PC/SC service (pcscd) stopped"
        if hr == S.SCARD_E_NO_READERS_AVAILABLE or hr == S.SCARD_S_SUCCESS and not readers:
            return []
        if hr != S.SCARD_S_SUCCESS:
            return f"NFC reader unavailable: {PcscError('list readers', hr)}"
        return [r for r in readers if self.reader_filter in r.lower()]

    def _watch(self, ctx) -> str:
        """Watch until pcscd goes away; returns why."""
        known: dict[str, _Reader] = {}
        pnp_state = S.SCARD_STATE_UNAWARE
        pnp_ok = True
        while not self._stop.is_set():
            readers = self._list(ctx)
            if isinstance(readers, str):
                return readers
            known = {r: known.get(r, _Reader()) for r in readers}
            if readers:
                self._set_status(True, f"NFC ready ({', '.join(readers)})", readers)
            else:
                self._set_status(False, "NFC reader unavailable: no reader plugged in", [])
            relist = False
            while not relist and not self._stop.is_set():
                states = [(r, known[r].state) for r in readers]
                if pnp_ok:
                    states.append((PNP, pnp_state))
                if not states:
                    self._stop.wait(self.poll_ms / 1000)
                    relist = True
                    break
                hr, new = S.SCardGetStatusChange(ctx, self._wait_ms(), states)
                t = time.monotonic()
                self._tend_reads(known)
                if hr == S.SCARD_E_TIMEOUT:
                    if not readers:
                        relist = True       # also covers pcscd builds without PnP notification
                    continue
                if hr == S.SCARD_E_CANCELLED:
                    return "stopped"
                if hr in SERVICE_LOST:
                    return "NFC reader unavailable: the PC/SC service (pcscd) stopped"
                if hr in READERS_CHANGED:
                    relist = True
                    break
                if hr != S.SCARD_S_SUCCESS:
                    if pnp_ok:               # some stacks reject the PnP pseudo reader
                        pnp_ok = False
                        continue
                    return f"NFC reader unavailable: {PcscError('status', hr)}"
                for name, ev, _atr in new:
                    if name == PNP:
                        if ev & S.SCARD_STATE_CHANGED and pnp_state != S.SCARD_STATE_UNAWARE:
                            relist = True
                        pnp_state = ev & ~S.SCARD_STATE_CHANGED
                        continue
                    rd = known[name]
                    old = rd.state
                    rd.state = ev & ~S.SCARD_STATE_CHANGED
                    if ev & (S.SCARD_STATE_UNKNOWN | S.SCARD_STATE_UNAVAILABLE | S.SCARD_STATE_IGNORE):
                        relist = True
                        rd.present = False
                        self._waiting.pop(name, None)
                        continue
                    present = bool(ev & S.SCARD_STATE_PRESENT) and not ev & S.SCARD_STATE_MUTE
                    # pcsc-lite counts insertions and removals in the high word: a card
                    # lifted and put back between two calls moves it by 2 or more.
                    replaced = present and rd.present and old != S.SCARD_STATE_UNAWARE and \
                        ((ev >> 16) - (old >> 16)) % 0x10000 >= 2
                    if present and (not rd.present or replaced):
                        rd.present = True
                        self._on_card(name, t)
                    elif not present and rd.present:
                        rd.present = False
                        self._on_removed(name)
                self._tend_reads(known)
        return "stopped"

    def _on_card(self, reader: str, t_present: float) -> None:
        job = self._jobs.get(reader)
        if job is not None and job.running:
            # the last card's read has not ended (a card lifted and put back, or
            # a stalled one): this one is read when it has
            self._waiting[reader] = (t_present, time.monotonic() + READ_DEADLINE_S)
            return
        job = self._jobs[reader] = _ReadJob(reader, t_present)
        job.thread = threading.Thread(target=self._read, args=(job,), name="nfc-read", daemon=True)
        job.thread.start()

    def _on_removed(self, reader: str) -> None:
        self._waiting.pop(reader, None)
        job = self._jobs.get(reader)
        if job is not None:
            with job.lock:
                if not job.settled:
                    job.removed = True      # said after the read's outcome
                    return
        self._emit("removed", reader=reader)

    def _wait_ms(self) -> int:
        """How long to wait for a status change: the poll, or less when a read's
        deadline or a waiting card's turn comes sooner."""
        now = time.monotonic()
        due = [job.deadline for job in self._jobs.values() if not job.settled]
        due += [give_up for _, give_up in self._waiting.values()]
        if self._waiting:
            due.append(now + WAITING_CHECK_S)       # whether the last read has ended
        if not due:
            return self.poll_ms
        return max(10, min(self.poll_ms, int((min(due) - now) * 1000) + 1))

    def _tend_reads(self, known: dict[str, _Reader]) -> None:
        """Give up on reads past their deadline, forget ended ones, start waiting ones."""
        now = time.monotonic()
        for name, job in list(self._jobs.items()):
            if now > job.deadline:
                self._settle(job, "read_failed", reason="error", message=too_slow())
            if job.settled and not job.running:
                del self._jobs[name]
        for name, (t_present, give_up) in list(self._waiting.items()):
            if name not in known:
                del self._waiting[name]             # the reader went
            elif name not in self._jobs:
                del self._waiting[name]
                self._on_card(name, t_present)
            elif now > give_up:
                del self._waiting[name]
                log.warning("NFC: %s is still busy with the last card; the new one was not read", name)
                self._emit("read_failed", reader=name, reason="error", t_present=t_present,
                           message="the reader is still busy with the last card; tap again in a moment")

    def _read(self, job: _ReadJob) -> None:
        hr, ctx = S.SCardEstablishContext(S.SCARD_SCOPE_USER)
        if hr != S.SCARD_S_SUCCESS:
            self._settle(job, "read_failed", reason="error", message=str(PcscError("establish a context", hr)))
            return
        try:
            tag = read_card(ctx, job.reader, job.deadline)
        except CardRemovedError as e:
            self._settle(job, "read_failed", reason="removed", message=str(e))
        except (TagError, PcscError) as e:
            self._settle(job, "read_failed", reason="error", message=str(e))
        except Exception as e:               # a read thread must not end with its card unsaid
            log.exception("NFC: reading the card on %s failed", job.reader)
            self._settle(job, "read_failed", reason="error", message=f"could not read the card: {e}")
        else:
            self._settle(job, "tap", uid=tag.uid, records=tag.records, t_read=time.monotonic())
        finally:
            try:
                S.SCardReleaseContext(ctx)
            except Exception:
                pass

    def _settle(self, job: _ReadJob, kind: str, **data) -> None:
        """Emit the read's outcome, unless it already was (the other side came first)."""
        with job.lock:
            if job.settled:
                if kind == "tap":
                    log.info("NFC: the card on %s answered after it was given up on; dropped", job.reader)
                return
            job.settled = True
            if self._stop.is_set():
                return
            if kind == "read_failed":
                if data["reason"] == "removed":
                    log.info("NFC: card on %s left mid-read: %s", job.reader, data["message"])
                else:
                    log.warning("NFC: could not read the card on %s: %s", job.reader, data["message"])
            self._emit(kind, reader=job.reader, t_present=job.t_present, **data)
            if job.removed:
                self._emit("removed", reader=job.reader)

    def _emit(self, kind: str, **data) -> None:
        # on a read thread nobody else would see the error, and the events after it must still go
        try:
            self.emit(kind, **data)
        except Exception:
            log.exception("NFC: handing on the %s event failed", kind)


def wait_for_tag(reader_filter: str = "", timeout: float = 30.0, on_notice: Callable[[str], None] | None = None):
    """For `mirror nfc read`: the first complete read within `timeout` seconds.

    Returns (reader, TagRead). Raises PcscError / LookupError(NO_READER_MESSAGE)
    when there is no service or reader, TimeoutError when no complete read
    arrived in time (the message says if a card left mid-read).
    """
    hr, ctx = S.SCardEstablishContext(S.SCARD_SCOPE_USER)
    if hr != S.SCARD_S_SUCCESS:
        raise LookupError(NO_READER_MESSAGE)
    try:
        deadline = time.monotonic() + timeout
        hr, readers = S.SCardListReaders(ctx, [])
        readers = [r for r in (readers or []) if reader_filter.lower() in r.lower()] if hr == 0 else []
        if not readers:
            if reader_filter and hr == 0:
                raise LookupError(f"no PC/SC reader matches {reader_filter!r}; "
                                  "run without --reader to use any reader")
            raise LookupError(NO_READER_MESSAGE)
        states = [(r, S.SCARD_STATE_UNAWARE) for r in readers]
        present = {r: False for r in readers}
        failures = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                extra = f" (a card left before its read finished{'' if failures == 1 else f' {failures} times'}; " \
                        "hold it still until the read completes)" if failures else ""
                raise TimeoutError(f"no tag within {timeout:g} s{extra}")
            hr, new = S.SCardGetStatusChange(ctx, int(min(left, 0.5) * 1000) or 1, states)
            if hr == S.SCARD_E_TIMEOUT:
                continue
            if hr != S.SCARD_S_SUCCESS:
                raise LookupError(NO_READER_MESSAGE if hr in SERVICE_LOST | READERS_CHANGED
                                  else str(PcscError("status", hr)))
            states = []
            for name, ev, _ in new:
                states.append((name, ev & ~S.SCARD_STATE_CHANGED))
                now_present = bool(ev & S.SCARD_STATE_PRESENT) and not ev & S.SCARD_STATE_MUTE
                if now_present and not present[name]:
                    present[name] = True
                    try:
                        return name, read_card(ctx, name, min(deadline, time.monotonic() + READ_DEADLINE_S))
                    except CardRemovedError:
                        failures += 1
                        if on_notice:
                            on_notice("card moved away too soon; tap again")
                elif not now_present:
                    present[name] = False
    finally:
        S.SCardReleaseContext(ctx)
