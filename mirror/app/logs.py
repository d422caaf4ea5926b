"""Logging to stderr and, when it is reachable, to the systemd journal.

The journal is spoken to directly over its datagram socket (the native
protocol is plain `KEY=value` lines), so no extra package is needed.
"""

from __future__ import annotations

import logging
import os
import socket
import sys

JOURNAL_SOCKET = "/run/systemd/journal/socket"
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


class JournalHandler(logging.Handler):
    def __init__(self, identifier: str = "smart-mirror", path: str = JOURNAL_SOCKET):
        super().__init__()
        self.identifier = identifier
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = self.format(record).replace("\n", " ")
            fields = [f"MESSAGE={msg}", f"PRIORITY={_PRIORITY.get(record.levelno, 6)}",
                      f"SYSLOG_IDENTIFIER={self.identifier}", f"LOGGER={record.name}"]
            self.sock.sendto("\n".join(fields).encode() + b"\n", self.path)
        except OSError:
            pass


def setup_logging(verbose: bool = False, journal: bool = True, level: str = "info") -> None:
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(logging.DEBUG if verbose else getattr(logging, level.upper(), logging.INFO))
    err = logging.StreamHandler(sys.stderr)
    err.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    err.setLevel(logging.DEBUG if verbose else logging.WARNING)
    root.addHandler(err)
    if journal and os.path.exists(JOURNAL_SOCKET):
        root.addHandler(JournalHandler())
