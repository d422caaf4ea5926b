"""The kiosk's local control socket: how `mirror call link` and store tools
talk to the running kiosk.

A Unix socket, not a network port: nothing listens beyond what the config
says, and file permissions decide who may use it: the socket is 0660 with
`control.group` (0600 when that group does not exist; never `video`), in a
folder made 0700 (0750 with the group). A folder another user owns or may
write to (a planted /tmp/smart-mirror-UID) is refused by the kiosk and by
`request`; anything but a socket at the path is never deleted. One JSON
object per line in (at most MAX_LINE bytes), one JSON object per line out:
{"cmd": NAME, ...} -> {"ok": true, ...} or {"ok": false, "error": TEXT}.
Each request reaches its handler with "peer" set by the server to the
connecting Unix user's name (SO_PEERCRED; whatever the client sent there is
overwritten), so a command can say who did it in an audit.
"""

from __future__ import annotations

import asyncio
import grp
import json
import logging
import os
import pwd
import socket
import stat
import time
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


def socket_path(cfg, client: bool = False) -> Path:
    """The config's control.socket (a relative one is taken from the config file's
    folder, as every path in it is), else the default place."""
    configured = cfg.control.socket
    return cfg.resolve(configured) if configured else default_socket_path(client)


class ControlError(Exception):
    pass


class AnotherKiosk(ControlError):
    """A live kiosk already answers on this control socket: this one must not start beside it
    (it would share the order journal and find every port taken)."""


MAX_LINE = 64 * 1024                  # longest request line; a longer one is answered and the connection closed
MAX_CLIENTS = 32                      # connections at once; more are told so and closed (a flood must not use up
                                      # the kiosk's files: the web listeners and the camera need them too)
IDLE_S = 30.0                         # a connection that sends no request line for this long is closed
DEFAULT_GROUP = "smart-mirror"        # control.group's default (mirror/core/config.py ControlConfig)
REFUSED_GROUPS = ("video",)           # everyone who may use the camera must not drive the kiosk

_warned: set[str] = set()


def _warn_once(key: str, msg: str, *args) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(msg, *args)


def _user(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return f"gid {gid}"


def group_id(group: str | None) -> int | None:
    """The gid of control.group, or None (with a warning, once) when it is empty, refused or missing."""
    if not group:
        return None
    if group in REFUSED_GROUPS:
        _warn_once(f"refused:{group}", "control.group %r is refused (its members use the camera, not the kiosk); "
                   "the control socket gets mode 0600, only the kiosk's user can use it", group)
        return None
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        _warn_once(f"missing:{group}", "control.group %r does not exist (create it with 'groupadd %s' and add staff "
                   "to it); the control socket gets mode 0600, only the kiosk's user can use it", group, group)
        return None


def group_id_quiet(group: str | None) -> int | None:
    """The gid of a group, or None; no warning (the client side)."""
    try:
        return grp.getgrnam(group).gr_gid if group and group not in REFUSED_GROUPS else None
    except KeyError:
        return None


def check_folder(folder: Path, gid: int | None, *, client: bool = False) -> None:
    """Raise ControlError unless `folder` is safe for the control socket: a real folder (not a
    symbolic link), owned by this user (a client also trusts root, and whoever root gave a folder
    in a root-only parent such as /run), writable by nobody else but the socket group `gid`."""
    try:
        st = os.lstat(folder)
    except FileNotFoundError:
        raise ControlError(f"control socket folder {folder} does not exist")
    me = os.geteuid()
    if stat.S_ISLNK(st.st_mode):
        raise ControlError(f"control socket folder {folder} is a symbolic link, refused (someone may have planted "
                           "it); remove it, or set control.socket to a path in a real folder")
    if not stat.S_ISDIR(st.st_mode):
        raise ControlError(f"control socket folder {folder} is not a folder; remove it or set control.socket")
    owner_ok = st.st_uid == me
    if client and not owner_ok:
        owner_ok = st.st_uid == 0 or _root_only(folder.parent)
    if not owner_ok:
        who = "this user" if client else "the kiosk's user"
        raise ControlError(f"control socket folder {folder} belongs to {_user(st.st_uid)}, not to {who} "
                           f"{_user(me)}: another local user may have made it, so it is not used; remove it "
                           f"(rm -r {folder}) or set control.socket to a folder {who} owns")
    if st.st_mode & stat.S_IWOTH:
        raise ControlError(f"control socket folder {folder} is writable by every user (mode "
                           f"{stat.S_IMODE(st.st_mode):04o}), so it is not used; chmod 0700 {folder} "
                           "(0750 with control.group)")
    if st.st_mode & stat.S_IWGRP and st.st_gid != gid:
        raise ControlError(f"control socket folder {folder} is writable by group {_group_name(st.st_gid)} (mode "
                           f"{stat.S_IMODE(st.st_mode):04o}), which is not control.group, so it is not used; "
                           f"chmod 0750 {folder}")


def _root_only(folder: Path) -> bool:
    """Only root can add or replace entries here (like /run): owned by root, writable by no one else."""
    try:
        st = os.stat(folder)
    except OSError:
        return False
    return st.st_uid == 0 and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


class ControlServer:
    def __init__(self, path: Path, handlers: dict[str, Handler], group: str | None = DEFAULT_GROUP):
        self.path = path
        self.handlers = handlers
        self.group = group
        self._server: asyncio.AbstractServer | None = None
        self._inode: int | None = None
        self._clients = 0

    def _make_folder(self, gid: int | None) -> int | None:
        """Create the socket's folder 0700 (0750 + group with a socket group), then check it;
        returns the gid actually in use."""
        folder = self.path.parent
        folder.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            pass                                         # made by systemd, an earlier run, or someone else
        else:
            if gid is not None:
                try:
                    os.chown(folder, -1, gid)
                    os.chmod(folder, 0o750)
                except PermissionError:
                    _warn_once(f"chgrp:{gid}", "cannot give %s to group %s (the kiosk's user is not in it); the "
                               "control socket gets mode 0600", folder, _group_name(gid))
                    gid = None
            if gid is None:
                os.chmod(folder, 0o700)                  # whatever the umask
        check_folder(folder, gid)
        return gid

    def _clear_path(self) -> None:
        """Remove a stale socket left by a killed kiosk; refuse anything else (never deleted)."""
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            kind = ("a symbolic link" if stat.S_ISLNK(st.st_mode) else "a folder" if stat.S_ISDIR(st.st_mode)
                    else "a regular file" if stat.S_ISREG(st.st_mode) else "not a socket")
            raise ControlError(f"{self.path} is {kind}, not a control socket; it was left alone: move it away "
                               "or set control.socket to another path")
        probe = socket.socket(socket.AF_UNIX)
        probe.settimeout(2.0)
        try:
            probe.connect(str(self.path))
        except (ConnectionRefusedError, FileNotFoundError):
            self.path.unlink(missing_ok=True)            # stale: nobody answers
            return
        except OSError as e:
            raise ControlError(f"cannot tell whether another kiosk answers on {self.path} ({e}); "
                               "stop it or remove the socket")
        finally:
            probe.close()
        raise AnotherKiosk(f"another kiosk is running (its control socket {self.path} answers), so this one "
                           "does not start; stop it first (systemctl stop smart-mirror) or give this one its own "
                           "control.socket, ports and checkout.db_path")

    async def start(self) -> None:
        gid = self._make_folder(group_id(self.group))
        self._clear_path()
        self._server = await asyncio.start_unix_server(self._client, path=str(self.path), limit=MAX_LINE)
        mode = 0o600
        if gid is not None:
            try:
                os.chown(self.path, -1, gid)
                mode = 0o660
            except PermissionError:
                _warn_once(f"chgrp:{gid}", "cannot give %s to group %s (the kiosk's user is not in it); the "
                           "control socket gets mode 0600", self.path, _group_name(gid))
        os.chmod(self.path, mode)
        self._inode = os.lstat(self.path).st_ino
        log.info("control socket at %s (mode %04o%s)", self.path, mode,
                 f", group {_group_name(gid)}" if mode == 0o660 else "")

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
            try:                                         # only our own socket, never what replaced it
                if os.lstat(self.path).st_ino == self._inode:
                    self.path.unlink()
            except FileNotFoundError:
                pass

    def _parse(self, line: bytes) -> tuple[dict | None, str | None]:
        """The request object, or None and the error to answer."""
        try:
            req = json.loads(line, parse_constant=_no_constant)
        except RecursionError:
            return None, "the JSON is nested too deeply; send one flat JSON object per line"
        except _ConstantError:
            return None, "NaN and Infinity are not JSON; send finite numbers"
        except ValueError:                               # not JSON, or not UTF-8
            return None, "expected one JSON object per line, like {\"cmd\": \"status\"}"
        if not isinstance(req, dict):
            return None, "expected a JSON object per line, like {\"cmd\": \"status\"}"
        return req, None

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._clients >= MAX_CLIENTS:
            _warn_once("control-full", "control socket: more than %d connections at once; refusing new ones "
                       "until some close", MAX_CLIENTS)
            try:
                writer.write(b'{"ok": false, "error": "the kiosk is busy (too many control connections); '
                             b'try again"}\n')
                await asyncio.wait_for(writer.drain(), 1.0)
            except (ConnectionError, asyncio.TimeoutError):
                pass
            writer.close()
            return
        self._clients += 1

        async def reply(obj: dict) -> None:
            writer.write((json.dumps(obj) + "\n").encode())
            await writer.drain()

        try:
            peer = _peer_user(writer.get_extra_info("socket"))
            while True:
                try:
                    line = await asyncio.wait_for(reader.readline(), IDLE_S)
                except asyncio.TimeoutError:
                    break                                 # idle: its file is worth more to the kiosk
                except (asyncio.LimitOverrunError, ValueError):
                    log.warning("control socket: a request line longer than %d bytes was refused", MAX_LINE)
                    await reply({"ok": False, "error": f"request line longer than {MAX_LINE} bytes; "
                                                       "send one short JSON object per line"})
                    break
                if not line:
                    break
                if not line.strip():
                    continue
                req, error = self._parse(line)
                if error is not None:
                    await reply({"ok": False, "error": error})
                    continue
                req["peer"] = peer                        # the kernel's word, never the client's
                cmd = req.get("cmd")
                handler = self.handlers.get(cmd) if isinstance(cmd, str) else None
                deadline = req.get("deadline")
                if not isinstance(deadline, (int, float)) or isinstance(deadline, bool):
                    deadline = req["deadline"] = None     # as a handler that waits before it acts reads it
                if deadline is not None and time.monotonic() > deadline:
                    # the kiosk was held up (stopped, swapping) past the client's wait: it has told
                    # its user nothing happened, so nothing may
                    log.warning("control command %r came after its client gave up; not done", cmd)
                    answer = {"ok": False, "error": "the request came after the client stopped waiting; not done"}
                elif handler is None:
                    answer = {"ok": False, "error": f"unknown command; expected one of {', '.join(self.handlers)}"}
                else:
                    try:
                        answer = await handler(req)
                    except Exception as e:  # a failing command must not take the socket down
                        log.exception("control command %r failed", cmd)
                        answer = {"ok": False, "error": f"{e.__class__.__name__}: {e}"}
                await reply(answer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._clients -= 1
            writer.close()


def _peer_user(sock) -> str:
    """The connecting process's Unix user name (uid N when it has none), from SO_PEERCRED."""
    import struct
    try:
        _pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                              struct.calcsize("3i")))
    except (OSError, AttributeError):
        return "unknown"
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


class _ConstantError(ValueError):
    pass


def _no_constant(name: str):
    raise _ConstantError(f"{name} is not allowed")


def request(path: Path, cmd: str, /, timeout: float = 10.0, **args) -> dict:
    """Send one command to the running kiosk; raises ControlError with a hint.

    The socket's folder is checked first (check_folder, client side): a socket in a folder
    another user controls (a planted /tmp/smart-mirror-UID) is never talked to."""
    path = Path(path)
    no_kiosk = ControlError(f"no running kiosk answers on {path}; start it with 'mirror run' "
                            "(or pass the same --config it runs with)")
    if not os.path.lexists(path.parent):
        raise no_kiosk
    try:
        check_folder(path.parent, group_id_quiet(DEFAULT_GROUP), client=True)
    except ControlError as e:
        raise ControlError(f"{e}; not talking to {path}")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISSOCK(st.st_mode):
        raise ControlError(f"{path} is not a socket; not talking to it (set control.socket to the kiosk's socket)")
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    try:
        s.connect(str(path))
    except (FileNotFoundError, ConnectionRefusedError):
        s.close()
        raise no_kiosk
    except PermissionError:
        s.close()
        raise ControlError(f"no permission to use {path}; run as the kiosk's user or a member of its group")
    except BlockingIOError:
        s.close()
        raise ControlError(f"the kiosk on {path} takes no more connections just now (its queue is full); "
                           "try again in a moment")
    except OSError as e:
        s.close()
        raise ControlError(f"cannot reach the kiosk on {path} ({e.strerror or e}); is it running?")
    try:
        # the kiosk does nothing asked after this: a client that gave up has said "nothing pushed".
        # CLOCK_MONOTONIC is one clock for every process of this boot, and no NTP step moves it.
        s.sendall((json.dumps({"cmd": cmd, **args, "deadline": time.monotonic() + timeout}) + "\n").encode())
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
    except (ValueError, RecursionError):
        reply = None
    if not isinstance(reply, dict):
        raise ControlError(f"the kiosk sent an unreadable reply on {path}")
    if not reply.get("ok"):
        raise ControlError(reply.get("error", "the kiosk refused"))
    return reply
