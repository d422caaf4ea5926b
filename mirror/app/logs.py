"""Logging: to the systemd journal through `systemd-python` when the kiosk
runs under systemd, otherwise plain lines on stderr.

Under systemd (`JOURNAL_STREAM` or `INVOCATION_ID` set, and the journal's
socket there) each record goes to the journal as one entry with fields:
SYSLOG_IDENTIFIER=smart-mirror, PRIORITY, LOGGER (the logger's name),
THREAD_NAME, CODE_FILE/LINE/FUNC, and any fields the code passes with
`extra=` (upper-cased: `extra={"order_id": ...}` becomes ORDER_ID). stderr
then carries no second copy when it is the journal stream itself. Outside
systemd the journal is also used when its socket exists and `journal` is true
(the `logging.journal` key; a developer's `mirror run`), next to stderr.
"""

from __future__ import annotations

import logging
import os
import sys

JOURNAL_SOCKET = "/run/systemd/journal/socket"
IDENTIFIER = "smart-mirror"
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CHATTY_LIBRARIES = ("matplotlib", "PIL")     # imported by MediaPipe; debug lines about fonts and EXIF tags
# the LogRecord's own attributes: JournalHandler already sends them as
# PRIORITY, LOGGER, CODE_*, THREAD_NAME...; only `extra=` keys become fields
# (EXCEPTION_INFO is the exc_info tuple's repr; the traceback is in MESSAGE and EXCEPTION_TEXT)
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime",
                                                                                    "EXCEPTION_INFO"}
_state = {"verbose": False}


def under_systemd(environ=None) -> bool:
    env = os.environ if environ is None else environ
    return bool(env.get("JOURNAL_STREAM") or env.get("INVOCATION_ID"))


def _stderr_is_journal(environ=None) -> bool:
    """True when stderr is the journal stream systemd connected (JOURNAL_STREAM
    is "DEV:INODE" of that stream, as sd_journal_stream_fd's docs say to check)."""
    env = os.environ if environ is None else environ
    try:
        dev, ino = (int(x) for x in env.get("JOURNAL_STREAM", "").split(":"))
        st = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


def _send(MESSAGE, **fields):
    """systemd.journal.send with the `extra=` fields upper-cased and the
    LogRecord's own attributes (already sent under their journal names) left out."""
    from systemd import journal
    out = {}
    for key, value in fields.items():
        if key in _RECORD_ATTRS or value is None:
            continue
        name = key.upper()
        # journal field names: A-Z, 0-9 and _, not starting with _ or a digit, at most 64
        if name.isascii() and name.replace("_", "").isalnum() and name[0].isalpha() and len(name) <= 64:
            out[name] = value
    try:
        journal.send(MESSAGE, **out)
    except OSError:
        pass        # journald restarting: the entry is lost, the kiosk goes on


def journal_handler(identifier: str = IDENTIFIER) -> logging.Handler:
    """systemd.journal.JournalHandler sending SYSLOG_IDENTIFIER=`identifier`."""
    from systemd.journal import JournalHandler
    return JournalHandler(sender_function=_send, SYSLOG_IDENTIFIER=identifier)


def setup_logging(verbose: bool = False, journal: bool = True, level: str = "info") -> None:
    _state["verbose"] = verbose
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    lvl = logging.DEBUG if verbose else getattr(logging, level.upper(), logging.INFO)
    root.setLevel(lvl)
    for name in CHATTY_LIBRARIES:       # their debug lines would bury ours under --verbose
        logging.getLogger(name).setLevel(max(lvl, logging.INFO))
    systemd_run = under_systemd()
    handler = None
    if journal and os.path.exists(JOURNAL_SOCKET):
        try:
            handler = journal_handler()
        except ImportError:         # systemd-python missing: stderr only
            handler = None
    if handler is not None:
        root.addHandler(handler)
    if handler is not None and _stderr_is_journal():
        return                      # stderr is the journal too: no second copy of each entry
    err = logging.StreamHandler(sys.stderr)
    if systemd_run:
        # stderr goes to the journal, which stamps the time itself
        err.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        err.setLevel(logging.WARNING if handler is not None and not verbose else lvl)
    else:
        err.setFormatter(logging.Formatter(_FORMAT, "%H:%M:%S"))
        err.setLevel(logging.DEBUG if verbose else logging.WARNING)
    root.addHandler(err)


def reconfigure(journal: bool, level: str) -> None:
    """Apply the config's `logging` section once it is read (keeps --verbose)."""
    setup_logging(verbose=_state["verbose"], journal=journal, level=level)
