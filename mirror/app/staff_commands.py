"""`mirror catalog ...` and `mirror staff ...`: the logic behind the commands.

mirror/app/cli.py only parses the arguments; everything here raises
`CommandError` (one line for stderr, exit 2) on bad input. Every command that
changes something writes an audit entry as "cli:<unix user>". Read-only
commands never create the database file.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import TextIO

from mirror.app.orders_report import local_time

MAX_PIN_INPUT = 1024


class CommandError(Exception):
    """One line for stderr; exit status 2."""


def cli_who() -> str:
    """'cli:<unix user>' for the audit: the real uid's name (and who ran sudo, when root through sudo)."""
    try:
        import pwd
        user = pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        user = str(os.getuid())
    sudo = os.environ.get("SUDO_USER")
    if sudo and sudo != user and os.getuid() == 0:
        return f"cli:{user} (sudo by {sudo})"
    return f"cli:{user}"


def _open(kind: str, db_path: Path, create: bool = True):
    """A Catalogue or StaffUsers on db_path; None when it does not exist and create is False."""
    from mirror.storage.catalogue import Catalogue, DatabaseError
    from mirror.storage.staff import StaffUsers
    if db_path.is_dir():
        raise CommandError(f"{db_path} is a folder; the database is a file (checkout.db_path, or --db)")
    if not create and not db_path.exists():
        return None
    try:
        return Catalogue(db_path) if kind == "catalogue" else StaffUsers(db_path)
    except DatabaseError as e:
        raise CommandError(str(e))


def _db_error(db_path: Path, e: Exception) -> CommandError:
    return CommandError(f"database {db_path}: {e.__class__.__name__}: {e}")


def _read_staff(db_path: Path, read) -> list:
    """`read(staff_db)`'s rows, or none when there is no database yet (never creates one)."""
    users = _open("staff", db_path, create=False)
    if users is None:
        return []
    try:
        return read(users)
    except sqlite3.Error as e:
        raise _db_error(db_path, e)
    finally:
        users.close()


def _audit(db_path: Path, action: str, detail: dict) -> None:
    users = _open("staff", db_path)
    try:
        users.audit(cli_who(), action, detail)
    finally:
        users.close()


# --- catalogue ------------------------------------------------------------------------
def catalog_import(db_path: Path, file: str, images: str | None = None, out: TextIO | None = None) -> int:
    out = sys.stdout if out is None else out
    from mirror.storage.catalogue import CatalogueError, parse_csv
    src = Path(file)
    if images is not None and not Path(images).is_dir():
        raise CommandError(f"--images {images}: no such folder")
    try:
        data = src.read_bytes()
    except FileNotFoundError:
        raise CommandError(f"{file}: no such file")
    except IsADirectoryError:
        raise CommandError(f"{file}: is a folder, expected a CSV file")
    except OSError as e:
        raise CommandError(f"{file}: cannot read it ({e.strerror})")
    try:
        products = parse_csv(data, source=file, images_dir=images)      # a bad file creates no database
    except CatalogueError as e:
        raise CommandError(str(e))
    cat = _open("catalogue", db_path)
    try:
        before = cat.count()
        cat.replace(products)
        n = len(products)
    except sqlite3.Error as e:
        raise _db_error(db_path, e)
    finally:
        cat.close()
    _audit(db_path, "catalog.import", {"file": str(src.resolve()), "products": n, "replaced": before})
    print(f"{file}: {n} products imported into {db_path}" + (f" (replacing {before})" if before else ""), file=out)
    return 0


def catalog_export(db_path: Path, out_file: str | None = None, out: TextIO | None = None) -> int:
    out = sys.stdout if out is None else out
    cat = _open("catalogue", db_path, create=False)
    if cat is None:
        raise CommandError(f"no database at {db_path}; import a catalogue first with mirror catalog import FILE.csv")
    try:
        n = cat.count()
        text = cat.export_csv()
    except sqlite3.Error as e:
        raise _db_error(db_path, e)
    finally:
        cat.close()
    if n == 0:
        raise CommandError(f"the catalogue in {db_path} is empty; import one with mirror catalog import FILE.csv")
    if out_file is None:
        out.write(text)
        out.flush()
        return 0
    dest = Path(out_file)
    if not dest.parent.is_dir():
        raise CommandError(f"--out {out_file}: folder {dest.parent} does not exist")
    if dest.is_dir():
        raise CommandError(f"--out {out_file}: is a folder, expected a file name")
    try:       # write beside it and rename: a reader never sees half a file
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=str(dest.parent))
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, dest)
    except OSError as e:
        raise CommandError(f"--out {out_file}: cannot write it ({e.strerror})")
    print(f"{out_file}: {n} products exported", file=out)
    return 0


# --- staff users ------------------------------------------------------------------------
def read_pin(stream: TextIO) -> str:
    """The PIN: the first line of stdin, without surrounding spaces."""
    line = stream.readline(MAX_PIN_INPUT + 1)
    if len(line) > MAX_PIN_INPUT:
        raise CommandError("the PIN on stdin is too long; send one line with 5 or more digits")
    pin = line.strip()
    if not pin:
        raise CommandError("no PIN on stdin; send one line with 5 or more digits, e.g. "
                           "printf '%s\\n' 48213 | mirror staff add-user NAME --pin-stdin")
    return pin


def staff_add_user(db_path: Path, name: str, pin_stdin: bool, stdin: TextIO | None = None,
                   out: TextIO | None = None) -> int:
    stdin = sys.stdin if stdin is None else stdin
    out = sys.stdout if out is None else out
    from mirror.storage.staff import StaffError, check_name, check_pin
    try:
        check_name(name)
    except StaffError as e:
        raise CommandError(str(e))
    if pin_stdin:
        pin = read_pin(stdin)
    elif stdin.isatty():
        import getpass
        pin = getpass.getpass(f"PIN for {name} (5+ digits): ")
        if getpass.getpass("the same PIN again: ") != pin:
            raise CommandError("the two PINs differ; nothing changed")
    else:
        raise CommandError("give the PIN on stdin with --pin-stdin (never on the command line)")
    try:
        check_pin(pin)
    except StaffError as e:
        raise CommandError(f"{e}; nothing changed")
    users = _open("staff", db_path)
    try:
        users.add_user(name, pin, by=cli_who())
    except StaffError as e:
        raise CommandError(str(e))
    except sqlite3.Error as e:
        raise _db_error(db_path, e)
    finally:
        users.close()
    print(f"staff user {name!r} added; {name} can log in to the staff console with the PIN", file=out)
    return 0


def staff_remove_user(db_path: Path, name: str, out: TextIO | None = None) -> int:
    out = sys.stdout if out is None else out
    from mirror.storage.staff import StaffError
    users = _open("staff", db_path, create=False)
    if users is None:
        raise CommandError(f"no staff user {name!r} (no database yet at {db_path})")
    try:
        stored = users.remove_user(name, by=cli_who())
    except StaffError as e:
        raise CommandError(str(e))
    except sqlite3.Error as e:
        raise _db_error(db_path, e)
    finally:
        users.close()
    print(f"staff user {stored!r} removed", file=out)
    return 0


def staff_list_users(db_path: Path, as_json: bool = False, out: TextIO | None = None) -> int:
    out = sys.stdout if out is None else out
    rows = _read_staff(db_path, lambda users: users.list_users())
    if as_json:
        print(json.dumps({"users": rows}, ensure_ascii=False), file=out)
    elif not rows:
        print(f"no staff users in {db_path}; add one with: mirror staff add-user NAME --pin-stdin", file=out)
    else:
        print(f"{'name':40}  {'added':19}  last login", file=out)
        for r in rows:
            print(f"{r['name']:40}  {local_time(r['created_at']):19}  {local_time(r['last_login_at'])}", file=out)
    return 0


def staff_audit(db_path: Path, as_json: bool = False, limit: int = 50, out: TextIO | None = None) -> int:
    out = sys.stdout if out is None else out
    if not 1 <= limit <= 100000:
        raise CommandError(f"--limit must be from 1 to 100000, got {limit}")
    rows = _read_staff(db_path, lambda users: users.list_audit(limit))
    if as_json:
        print(json.dumps({"audit": rows}, ensure_ascii=False), file=out)
    elif not rows:
        print(f"no audit entries in {db_path}", file=out)
    else:
        for r in rows:
            detail = json.dumps(r["detail"], ensure_ascii=False, sort_keys=True) if r["detail"] else ""
            print(f"{local_time(r['at'])}  {r['who']:24}  {r['action']:20}  {detail}", file=out)
    return 0


# --- suggestions, through the running kiosk --------------------------------------------------
def staff_push(sock: Path, skus: list[str], as_json: bool = False, out: TextIO | None = None) -> int:
    """`mirror staff push SKU...`: the console's push, sent over the control socket (audited as
    control:<unix user>); the kiosk's refusal (unknown SKU, nobody there) is one line, exit 2."""
    out = sys.stdout if out is None else out
    from mirror.app.control import ControlError, request
    bad = [s for s in skus if not s.strip() or len(s) > 40]
    if bad:
        raise CommandError(f"{bad[0]!r} is not a SKU; give 1 to 12 SKUs of 1 to 40 characters")
    if len(skus) > 12:
        raise CommandError(f"{len(skus)} SKUs: the mirror shows at most 12 suggestions at a time")
    try:
        reply = request(sock, "staff.push", skus=skus)
    except ControlError as e:
        if str(e).startswith("unknown command"):
            raise CommandError("the running kiosk has the staff console turned off (staff.enabled); "
                               "nothing was pushed")
        raise CommandError(f"nothing pushed: {e}")
    if as_json:
        print(json.dumps({k: reply[k] for k in ("push_id", "items", "session_id", "by")}), file=out)
    else:
        print(f"pushed {len(reply['items'])} suggestion(s) to the mirror: {', '.join(reply['items'])} "
              f"(push {reply['push_id']}, as {reply['by']})", file=out)
    return 0
