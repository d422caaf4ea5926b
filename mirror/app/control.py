"""The kiosk's local control socket: how `mirror call link` and store tools
talk to the running kiosk.

A Unix socket, not a network port: nothing listens beyond what the config
says, and file permissions (0660) decide who may use it. One JSON object per
line in, one JSON object per line out: {"cmd": NAME, ...} -> {"ok": true, ...}
or {"ok": false, "error": TEXT}.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from pathlib import Path
from typing import Awaitable, Callable

log = logging.getLogger(__name__)

Handler = Callable[[dict], Awaitable[dict]]


def _candidates() -> list[Path]:
    out = []
    if os.environ.get("RUNTIME_DIRECTORY"):                  # set by systemd's RuntimeDirectory=
        out.append(Path(os.environ["RUNTIME_DIRECTORY"].split(":")[0]) / "control.sock")
    if Path("/run/smart-mirror").is_dir():                   # the appliance's runtime folder
        out.append(Path("/run/smart-mirror/control.sock"))
    if os.environ.get("XDG_RUNTIME_DIR"):
        out.append(Path(os.environ["XDG_RUNTIME_DIR"]) / "smart-mirror" / "control.sock")
    out.append(Path(f"/tmp/smart-mirror-{os.getuid()}") / "control.sock")
    return out


def default_socket_path(client: bool = False) -> Path:
    """Where the socket goes when call.control_socket is empty: systemd's
    RuntimeDirectory, /run/smart-mirror, the user's runtime dir, else /tmp.
    A client takes the first of those where a socket exists."""
    cands = _candidates()
    if client:
        for c in cands:
            if c.exists():
                return c
    return cands[0]


def socket_path(configured: str, client: bool = False) -> Path:
    return Path(configured) if configured else default_socket_path(client)


class ControlError(Exception):
    pass


class ControlServer:
    def __init__(self, path: Path, handlers: dict[str, Handler]):
        self.path = path
        self.handlers = handlers
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o770)
        if self.path.exists():
            # a socket left by a killed kiosk; refuse if another kiosk still answers on it
            probe = socket.socket(socket.AF_UNIX)
            try:
                probe.connect(str(self.path))
                raise ControlError(f"another kiosk is running (its control socket {self.path} answers)")
            except (ConnectionRefusedError, FileNotFoundError):
                self.path.unlink(missing_ok=True)
            finally:
                probe.close()
        self._server = await asyncio.start_unix_server(self._client, path=str(self.path))
        os.chmod(self.path, 0o660)
        log.info("control socket at %s", self.path)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self.path.unlink(missing_ok=True)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    req = json.loads(line)
                    handler = self.handlers.get(req.get("cmd")) if isinstance(req, dict) else None
                    if handler is None:
                        reply = {"ok": False, "error": f"unknown command; expected one of {', '.join(self.handlers)}"}
                    else:
                        reply = await handler(req)
                except ValueError:
                    reply = {"ok": False, "error": "expected one JSON object per line"}
                except Exception as e:  # a failing command must not take the socket down
                    log.exception("control command failed")
                    reply = {"ok": False, "error": f"{e.__class__.__name__}: {e}"}
                writer.write((json.dumps(reply) + "\n").encode())
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


def request(path: Path, cmd: str, /, timeout: float = 10.0, **args) -> dict:
    """Send one command to the running kiosk; raises ControlError with a hint."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    try:
        s.connect(str(path))
    except (FileNotFoundError, ConnectionRefusedError):
        s.close()
        raise ControlError(f"no running kiosk answers on {path}; start it with 'mirror run' "
                           "(or pass the same --config it runs with)")
    except PermissionError:
        s.close()
        raise ControlError(f"no permission to use {path}; run as the kiosk's user or a member of its group")
    try:
        s.sendall((json.dumps({"cmd": cmd, **args}) + "\n").encode())
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    except socket.timeout:
        raise ControlError(f"the kiosk did not answer on {path} within {timeout:.0f} s")
    finally:
        s.close()
    try:
        reply = json.loads(buf)
    except ValueError:
        raise ControlError(f"the kiosk sent an unreadable reply on {path}")
    if not reply.get("ok"):
        raise ControlError(reply.get("error", "the kiosk refused"))
    return reply
