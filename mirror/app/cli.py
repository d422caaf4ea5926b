"""The `mirror` command line.

Every subcommand exits 0 on success; on bad input it exits 2 with one line on
stderr that names what was wrong and how to fix it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

EXIT_BAD_INPUT = 2
EXIT_BROKEN_PIPE = 128 + 13     # as for a process ended by SIGPIPE


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit 2."""


def _fail(msg: str) -> int:
    print(f"mirror: error: {msg}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _quiet_native_logs() -> None:
    """MediaPipe's C++ side logs to file descriptor 2 whatever glog is told.

    Point fd 2 at /dev/null and give Python's sys.stderr a copy of the real
    one, so our errors stay one clean line and the native chatter goes away.
    """
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    try:
        sys.stderr.flush()
        real = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        sys.stderr = os.fdopen(real, "w", buffering=1)
    except (OSError, ValueError):
        pass


def _load_config(path: str | None):
    from mirror.core import config
    return config.load(path)


def cmd_check_config(args) -> int:
    from mirror.app.catalog_source import kiosk_catalog
    from mirror.core import config
    from mirror.core.catalog import CatalogError
    try:
        cfg = config.load(args.file)
        kiosk_catalog(cfg, seed=False, strict=True)
    except config.ConfigError as e:
        for p in e.problems:
            print(f"{e.source}: {p}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except CatalogError as e:
        print(f"{args.file}: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"{args.file}: ok")
    return 0


def cmd_gesture(args) -> int:
    from vision import gestures as G
    from vision.capture import SourceError, read_image
    from vision.hands import HandTracker, find_hands_in_photo
    tracker = HandTracker(static=True, model="full", max_hands=2, min_conf=0.3, width=None)
    status = 0
    for path in args.images:
        try:
            img = read_image(path)
        except SourceError as e:
            print(f"mirror: error: {e}", file=sys.stderr)
            status = EXIT_BAD_INPUT
            continue
        hands = find_hands_in_photo(tracker, img)
        best = G.photo_gesture([h.points for h in hands])
        print(json.dumps({"image": path, "gesture": best.gesture, "score": best.score, "hands": len(hands)}),
              flush=True)
    return status


CLI_PARTS = ("upper", "lower", "full")
PART_HELP = ("which clothing: upper = the top (or a dress as a whole), lower = trousers or a skirt, "
             "full = all the clothing she wears (default). Bare skin is left out.")


def _check_part(part: str) -> str:
    if part not in CLI_PARTS:
        raise UsageError(f"--part {part!r} is not a garment part; use upper, lower or full")
    return part


OUT_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")
OUT_EXTS_TEXT = ".png, .jpg, .jpeg, .webp, .tif, .tiff or .bmp"
ALPHA_EXTS = (".png", ".webp", ".tif", ".tiff")     # those that keep a cut-out's transparency


def _check_out(image: str, out: str) -> None:
    """Before the models load: --out must be an image name and not the input photo."""
    dst, src = Path(out), Path(image)
    if dst.suffix.lower() not in OUT_EXTS:
        raise UsageError(f"--out {out}: use a name ending in {OUT_EXTS_TEXT}")
    same = dst.resolve() == src.resolve()
    if not same and dst.exists() and src.exists():
        try:
            same = os.path.samefile(dst, src)         # a hard link, or a path resolve() cannot see through
        except OSError:
            pass
    if same:
        raise UsageError(f"--out {out} is the input image; choose another name")
    _check_out_folder(dst)


def _check_out_folder(out: Path) -> None:
    folder = out.parent
    if not folder.exists():
        raise UsageError(f"output folder {folder} does not exist; create it first (mkdir -p {folder})")
    if not folder.is_dir():
        raise UsageError(f"output folder {folder} is not a folder; choose another --out")
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder; give a file name such as {out / 'mask.png'}")


def _photo_matte(path: str, part: str = "full"):
    """(image, garment matte, whether a person was found). Of a truncated
    file only the rows that decoded are cut; the grey below them is not hers."""
    import numpy as np
    from vision.capture import PHOTO_MIN_SIDE, SourceError, read_photo
    from vision.photo_segmenter import PhotoSegmenter
    img, rows = read_photo(path)
    if rows is not None:
        if rows < PHOTO_MIN_SIDE:
            raise SourceError(f"{path}: the file is truncated and almost none of the picture decodes; "
                              "use a complete copy")
        what = (f"only its top {rows} of {img.shape[0]} rows decode, and only they are cut" if rows < img.shape[0]
                else "the picture decodes whole but may be blurred or wrong in places")
        print(f"mirror: warning: {path}: the file is truncated; {what}", file=sys.stderr)
    seg = PhotoSegmenter()
    matte = np.zeros(img.shape[:2], np.float32)
    matte[:rows] = seg.garment(np.ascontiguousarray(img[:rows]), part=part)
    return img, matte, seg.last_model is not None


def _say_if_empty(image: str, part: str, matte, person: bool) -> None:
    """An empty result still exits 0 (the photo is valid), but says why on stderr."""
    if float(matte.mean()) * 100 >= 0.05:            # shows as more than 0.0%
        return
    what = "no person found" if not person else "no garment found" if part == "full" else f"no {part} garment found"
    print(f"mirror: warning: {image}: {what}", file=sys.stderr)


def _write_image(path: str, img) -> None:
    import cv2
    out = Path(path)
    _check_out_folder(out)          # again: it may have gone while the models ran
    try:
        ok = cv2.imwrite(str(out), img)
    except cv2.error:
        ok = False
    if not ok:
        raise UsageError(f"cannot write {out}; use a {OUT_EXTS_TEXT} name in a writable folder")


def cmd_segment(args) -> int:
    import numpy as np
    part = _check_part(args.part)
    _check_out(args.image, args.out)
    img, matte, person = _photo_matte(args.image, part)
    _write_image(args.out, np.clip(matte * 255.0 + 0.5, 0, 255).astype(np.uint8))
    _say_if_empty(args.image, part, matte, person)
    print(f"{args.out}: garment covers {float(matte.mean()) * 100:.1f}% of the image")
    return 0


def cmd_recolor(args) -> int:
    from mirror.app.catalog_source import kiosk_catalog
    from mirror.core.catalog import CatalogError
    from mirror.core.colors import ColorError, parse_color
    import numpy as np
    from vision.capture import read_alpha
    from vision.recolor import recolor
    part = _check_part(args.part)
    _check_out(args.image, args.out)
    try:
        table = kiosk_catalog(_load_config(args.config), seed=False).colour_table()
    except CatalogError:
        table = {}
    try:
        color = parse_color(args.color, table)
    except ColorError as e:
        raise UsageError(str(e))
    img, matte, person = _photo_matte(args.image, part)
    out = recolor(img, matte, color)
    if Path(args.out).suffix.lower() in ALPHA_EXTS and (alpha := read_alpha(args.image)) is not None:
        out = np.dstack([out, alpha])           # a cut-out stays a cut-out
    _write_image(args.out, out)
    _say_if_empty(args.image, part, matte, person)
    print(f"{args.out}: recoloured {float(matte.mean()) * 100:.1f}% of the image")
    return 0


EXIT_SIGTERM = 128 + 15


def _on_sigterm():
    """A threading.Event set by SIGTERM. Installed before pygame starts: SDL
    installs its own SIGTERM handler only where none is set, and that one
    merely queues a quit event nobody reads in a headless command."""
    import signal
    import threading
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    return stopping


def _say_stopped(line: str) -> None:
    """One line on stderr, on a line of its own after a live progress line."""
    print(("\n" if sys.stderr.isatty() else "") + line, file=sys.stderr, flush=True)


def cmd_bench(args) -> int:
    stopping = _on_sigterm()
    from mirror.app.bench import MAX_FRAMES, BenchStopped, bench
    if not 1 <= args.frames <= MAX_FRAMES:
        raise UsageError(f"--frames must be between 1 and {MAX_FRAMES}, got {args.frames}")
    cfg = _load_config(args.config)
    try:
        bench(cfg, Path(args.video), args.frames, naive=args.naive, as_json=args.json,
              progress=sys.stderr.isatty() or not args.json, stopping=stopping)
    except BenchStopped as e:
        _say_stopped(f"mirror bench: {e} by SIGTERM; no result")
        return EXIT_SIGTERM
    return 0


def cmd_replay(args) -> int:
    stopping = _on_sigterm()
    from mirror.app.replay import ReplayError, ReplayStopped, check_seconds, replay
    try:
        check_seconds(args.seconds)          # before the models load
        replay(Path(args.video), args.seconds, cfg=_load_config(args.config), as_json=args.json,
               stopping=stopping)
    except ReplayError as e:
        raise UsageError(str(e))
    except ReplayStopped as e:
        _say_stopped(f"mirror replay: {e} by SIGTERM; no result")
        return EXIT_SIGTERM
    return 0


def cmd_run(args) -> int:
    # A stop request (SIGTERM) during the seconds of start-up ends the kiosk
    # cleanly as soon as it is built, instead of killing it half-way.
    stopping = _on_sigterm()
    if args.duration is not None:
        _positive_seconds("--duration", args.duration)
    from mirror.app.kiosk import run_kiosk
    cfg = _load_config(args.config)
    return run_kiosk(cfg, headless=args.headless, duration=args.duration, stopping=stopping)


def _positive_seconds(option: str, value: float) -> float:
    """A duration given on the command line: a finite number of seconds above 0, else UsageError."""
    import math
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise UsageError(f"{option} must be a positive number of seconds, got {value!r}; for example {option} 30")
    return value


def cmd_demo(args) -> int:
    _positive_seconds("--seconds", args.seconds)
    from mirror.app.demo import run_demo
    return run_demo(out_dir=Path(args.out), seconds=args.seconds, headless=args.headless,
                    window=args.window)


def _control(args, cmd: str, **req) -> dict:
    from mirror.app.control import ControlError, request, socket_path
    cfg = _load_config(args.config)
    try:
        return request(socket_path(cfg, client=True), cmd, **req)
    except ControlError as e:
        raise UsageError(str(e))


def cmd_call_link(args) -> int:
    reply = _control(args, "link")
    if args.json:
        print(json.dumps({"url": reply["url"], "expires": reply["expires"]}))
    else:
        import time as _t
        left = reply["expires"] - _t.time()
        print(f"{reply['url']}\n(single use; expires in {left / 60:.0f} min, at "
              f"{_t.strftime('%H:%M', _t.localtime(reply['expires']))})")
    return 0


def cmd_snapshot(args) -> int:
    import base64
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise UsageError(f"--out {args.out}: expected a .png file name")
    if not out.parent.is_dir():
        raise UsageError(f"output folder {out.parent} does not exist")
    png = base64.b64decode(_control(args, "snapshot")["png_b64"])
    try:
        out.write_bytes(png)
    except OSError as e:
        raise UsageError(f"cannot write {out}: {e.strerror}")
    print(f"{out}: {len(png)} bytes")
    return 0


def _duration(seconds) -> str:
    s = int(seconds or 0)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return f"{d}d {h}h {m}m" if d else f"{h}h {m}m" if h else f"{m}m {s}s"


def _status_text(st: dict) -> list[str]:
    """`mirror status` for a person: the health first, then whatever else the
    features reported, then the last warnings and errors."""
    call_keys = {"call", "knocking", "friend", "connected", "friend_frames", "friend_size", "sent_frames",
                 "reactions", "codec", "track_sent"}
    shown = call_keys | {"fps", "frames", "camera", "present", "reader", "checkout", "staff_clients", "rss_mb",
                         "fds", "threads", "uptime_s", "last_errors", "warnings_total", "errors_total"}
    friend = st.get("friend") or "a friend"
    if "call" not in st:
        call = "off"
    elif st.get("connected"):
        call = f"{friend} connected ({st.get('codec') or '?'}, {st.get('sent_frames', 0)} frames sent)"
    elif st.get("knocking"):
        call = f"{friend} waiting to be let in"
    else:
        call = "no call"
    rows = [
        ("uptime", _duration(st.get("uptime_s"))),
        ("screen", f"{st.get('fps', 0):.1f} fps, {st.get('frames', 0)} frames"),
        ("camera", st.get("camera", "?")),
        ("shopper", "present" if st.get("present") else "nobody at the mirror"),
        ("reader", st.get("reader", "off")),
        ("checkout", {"status": "idle"}.get(st.get("checkout", "off"), st.get("checkout", "off"))),
        ("call", call),
        ("staff", f"{st.get('staff_clients', 0)} console client(s)"),
        ("memory", f"{st['rss_mb']:.0f} MB resident" if st.get("rss_mb") is not None else "?"),
        ("process", f"{st.get('fds', '?')} open files, {st.get('threads', '?')} threads"),
    ]
    rows += [(k, v) for k, v in st.items() if k not in shown]
    lines = [f"{k:10} {v}" for k, v in rows]
    errors = st.get("last_errors") or []
    lines.append(f"{'problems':10} {st.get('errors_total', 0)} errors, {st.get('warnings_total', 0)} warnings "
                 f"since start" + (", the last:" if errors else ""))
    lines += [f"  {e}" for e in errors]
    return lines


def cmd_status(args) -> int:
    st = _control(args, "status")
    st.pop("ok", None)
    if args.json:
        print(json.dumps(st))
    else:
        print("\n".join(_status_text(st)))
    return 0


def cmd_bench_call(args) -> int:
    from mirror.harness.call_bench import BenchError, bench_call
    _positive_seconds("--seconds", args.seconds)
    try:
        result = bench_call(seconds=args.seconds, video=args.video, progress=True)
    except BenchError as e:
        raise UsageError(str(e))
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))
    return 0


def cmd_bench_staff(args) -> int:
    from mirror.harness.staff_bench import BenchError, bench_staff
    if args.pushes < 1:
        raise UsageError(f"--pushes must be at least 1, got {args.pushes}")
    try:
        result = bench_staff(pushes=args.pushes, video=args.video, progress=True)
    except BenchError as e:
        raise UsageError(str(e))
    print(json.dumps(result) if args.json else "\n".join(f"{k:24} {v}" for k, v in result.items()))
    return 0


def cmd_soak(args) -> int:
    import math
    from mirror.harness.soak import SoakError, soak
    if not math.isfinite(args.minutes) or args.minutes <= 0:
        raise UsageError(f"--minutes must be a positive number, got {args.minutes!r}; for example --minutes 30")
    try:
        out = soak(args.minutes, progress=True)
    except SoakError as e:
        raise UsageError(str(e))
    print("targets:")
    for _key, line, _met in out["targets"]:
        print(f"  {line}")
    for note in out["notes"]:
        print(note)
    res = out["result"]
    print(json.dumps(res) if args.json else "\n".join(f"{k:20} {v}" for k, v in res.items()))
    return 0


# --- NFC (logic in nfc/commands.py), orders, the checkout harness -------------
def _nfc(fn, *a, **kw) -> int:
    from nfc.commands import CommandError
    try:
        return fn(*a, **kw)
    except CommandError as e:
        raise UsageError(str(e))


def cmd_nfc_read(args) -> int:
    _positive_seconds("--timeout", args.timeout)
    from nfc.commands import nfc_read
    return _nfc(nfc_read, args.reader or "", args.timeout, args.json)


def cmd_orders(args) -> int:
    from mirror.app.orders_report import ReportError, orders_report
    path = Path(args.db) if args.db else _load_config(args.config).orders_path()
    try:
        return orders_report(path, args.json)
    except ReportError as e:
        raise UsageError(str(e))


def cmd_bench_checkout(args) -> int:
    from mirror.harness.checkout_bench import BenchError, run_bench
    if args.taps < 1:
        raise UsageError("--taps must be at least 1")
    if not 0.0 <= args.kill_rate <= 1.0:
        raise UsageError("--kill-rate must be from 0 to 1")
    try:
        result = run_bench(args.taps, chaos=args.chaos, seed=args.seed, progress=True, kill_rate=args.kill_rate)
    except BenchError as e:
        raise UsageError(str(e))
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:32} {v}")
    return 0 if result["lost"] == 0 and result["duplicated"] == 0 else 1


def cmd_checkout_host(args) -> int:
    from mirror.harness.checkout_host import run_host
    return run_host(_load_config(args.config), duration=args.duration)


# --- the catalogue and staff users (logic in mirror/app/staff_commands.py) ----------
def _store(fn, args, *a, **kw) -> int:
    """Run a staff_commands function on the kiosk's database (--db, else the config's checkout.db_path)."""
    from mirror.app.staff_commands import CommandError
    db = Path(args.db) if getattr(args, "db", None) else _load_config(args.config).orders_path()
    try:
        return fn(db, *a, **kw)
    except CommandError as e:
        raise UsageError(str(e))


def cmd_catalog_import(args) -> int:
    from mirror.app.staff_commands import catalog_import
    return _store(catalog_import, args, args.file, images=args.images)


def cmd_catalog_export(args) -> int:
    from mirror.app.staff_commands import catalog_export
    return _store(catalog_export, args, args.out)


def cmd_staff_add_user(args) -> int:
    from mirror.app.staff_commands import staff_add_user
    return _store(staff_add_user, args, args.name, args.pin_stdin)


def cmd_staff_remove_user(args) -> int:
    from mirror.app.staff_commands import staff_remove_user
    return _store(staff_remove_user, args, args.name)


def cmd_staff_list_users(args) -> int:
    from mirror.app.staff_commands import staff_list_users
    return _store(staff_list_users, args, args.json)


def cmd_staff_push(args) -> int:
    from mirror.app.control import socket_path
    from mirror.app.staff_commands import CommandError, staff_push
    sock = socket_path(_load_config(args.config), client=True)
    try:
        return staff_push(sock, args.skus, args.json)
    except CommandError as e:
        raise UsageError(str(e))


def cmd_staff_audit(args) -> int:
    from mirror.app.staff_commands import staff_audit
    return _store(staff_audit, args, args.json, args.limit)


def _add_catalog_and_staff_parsers(sub) -> None:
    def db_options(c) -> None:
        c.add_argument("--config", help="config file whose checkout.db_path names the database "
                                        "(default: the embedded defaults and MIRROR_* variables)")
        c.add_argument("--db", help="database file (overrides the config)")

    s = sub.add_parser("catalog", help="import or export the product catalogue (CSV)",
                       description="The catalogue and stock live in the kiosk's SQLite database, the same file "
                                   "as the orders (checkout.db_path). The CSV format is in config/README.md; "
                                   "config/catalog.csv is an example.")
    cat_sub = s.add_subparsers(dest="catalog_command", metavar="CATALOG_COMMAND", required=True)
    c = cat_sub.add_parser("import", help="replace the catalogue with a CSV file",
                           description="Validates every row of FILE.csv and replaces the whole catalogue with it, "
                                       "in one transaction. On bad rows it exits 2 with one line naming each bad "
                                       "row by its line number, and keeps the old catalogue: nothing is imported. "
                                       "Items put aside (stock holds) are kept. Writes an audit entry.")
    c.add_argument("file", metavar="FILE.csv")
    c.add_argument("--images", metavar="DIR", help="also check that each product's image file is in DIR")
    db_options(c)
    c.set_defaults(func=cmd_catalog_import)
    c = cat_sub.add_parser("export", help="write the catalogue out as CSV",
                           description="Writes the catalogue in the format `mirror catalog import` reads, stock "
                                       "as the full colour x size grid of counts on hand (items put aside "
                                       "included), to stdout or --out.")
    c.add_argument("--out", metavar="FILE", help="write to FILE (replaced whole) instead of stdout")
    db_options(c)
    c.set_defaults(func=cmd_catalog_export)

    s = sub.add_parser("staff", help="staff console users and the audit trail",
                       description="Staff log in to the console with a PIN of at least 5 digits, stored as an "
                                   "argon2 hash in the kiosk's database. Changes are written to the audit "
                                   "trail as cli:<unix user>.")
    staff_sub = s.add_subparsers(dest="staff_command", metavar="STAFF_COMMAND", required=True)
    c = staff_sub.add_parser("add-user", help="add a staff user; the PIN comes from stdin",
                             description="Adds NAME (1-40 printable characters, no ':', unique whatever the "
                                         "case). The PIN (at least 5 digits, digits only, not used by another "
                                         "user) is read from the first line of stdin with --pin-stdin, or asked "
                                         "twice on a terminal; never from the command line. Example: "
                                         "echo 48213 | mirror staff add-user Anna --pin-stdin")
    c.add_argument("name", metavar="NAME")
    c.add_argument("--pin-stdin", action="store_true", help="read the PIN from the first line of stdin")
    db_options(c)
    c.set_defaults(func=cmd_staff_add_user)
    c = staff_sub.add_parser("remove-user", help="remove a staff user",
                             description="Removes NAME (any case); the audit trail keeps what they did.")
    c.add_argument("name", metavar="NAME")
    db_options(c)
    c.set_defaults(func=cmd_staff_remove_user)
    c = staff_sub.add_parser("list-users", help="list the staff users",
                             description='Names, when each was added and last logged in. With --json: '
                                         '{"users": [{"name", "created_at", "last_login_at"}]} (unix times).')
    c.add_argument("--json", action="store_true", help="print one JSON object")
    db_options(c)
    c.set_defaults(func=cmd_staff_list_users)
    c = staff_sub.add_parser("audit", help="list the audit trail, newest first",
                             description='Who did what, and when: staff actions in the console and changes made '
                                         'with this command line. With --json: {"audit": [{"id", "at", "who", '
                                         '"action", "detail"}]}.')
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.add_argument("--limit", type=int, default=50, metavar="N", help="the newest N entries (default: 50)")
    db_options(c)
    c.set_defaults(func=cmd_staff_audit)
    c = staff_sub.add_parser("push", help="push suggestions to the running kiosk's mirror (for scripts)",
                             description="The console's push, through the running kiosk's control socket: the "
                                         "SKUs appear on the mirror as a carousel of cards for the shopper there "
                                         "now. Audited as control:<unix user>. Exits 2 with one line when no "
                                         "kiosk runs, a SKU is unknown or nobody is at the mirror. With --json: "
                                         '{"push_id", "items", "session_id", "by"}.')
    c.add_argument("skus", nargs="+", metavar="SKU")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.add_argument("--config", help="the config the kiosk runs with (for its control socket)")
    c.set_defaults(func=cmd_staff_push)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mirror",
        description="Smart-mirror kiosk: live mirrored view, hand gestures, garment recolouring.",
        epilog="Config keys are documented in config/mirror.toml. Logs go to the systemd journal when available. "
               "Exit status: 0 done; 2 bad input (one line on stderr says what and how to fix it); "
               "129 the kiosk stopped on SIGHUP (systemd starts it again); 130 interrupted (Ctrl-C); "
               "141 the reader of its output went away (| head); 143 stopped by SIGTERM.")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("demo", help="run the whole kiosk on the bundled clip with a scripted timeline",
                       description="Runs the kiosk on the bundled clip, with no camera, reader or network. "
                                   "A scripted timeline injects what the clip cannot show (a circle gesture, "
                                   "a swipe) and the screen says so. With a display it opens a window; "
                                   "without one it runs headless, writes a recording and screenshots to --out "
                                   "and prints live stats.")
    s.add_argument("--out", default="demo-out", help="folder for the recording and screenshots (default: demo-out)")
    s.add_argument("--seconds", type=float, default=18.0, help="how long to run (default: 18)")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--headless", action="store_true", default=None, help="force headless even with a display")
    g.add_argument("--window", action="store_true", help="force a window (needs a display)")
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("run", help="run the kiosk from a config file",
                       description="Runs the kiosk: camera, vision, session and the fullscreen portrait view. "
                                   "Press d for the debug overlay and q or Esc to quit when a keyboard is attached.")
    s.add_argument("--config", help="TOML config file (default: the embedded defaults)")
    s.add_argument("--headless", action="store_true", help="no window (for tests and diagnostics)")
    s.add_argument("--duration", type=float, help="stop after this many seconds")
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("gesture", help="name the hand gesture in each image (one JSON line per image)",
                       description='Prints {"image", "gesture", "score", "hands"} per image. Gestures: '
                                   "open_palm, fist, pointing_up, thumbs_up, thumbs_down, victory, pinch or none.")
    s.add_argument("images", nargs="+", metavar="IMAGE")
    s.set_defaults(func=cmd_gesture)

    s = sub.add_parser("segment", help="write the garment mask of a photo",
                       description="Writes a single-channel 8-bit mask, the size of IMAGE: 255 = garment.")
    s.add_argument("image", metavar="IMAGE")
    s.add_argument("--out", required=True, metavar="MASK.png",
                   help=f"where to write the mask ({OUT_EXTS_TEXT}; not IMAGE itself)")
    s.add_argument("--part", default="full", metavar="upper|lower|full", help=PART_HELP)
    s.set_defaults(func=cmd_segment)

    s = sub.add_parser("recolor", help="recolour the garment in a photo",
                       description="Recolours the garment, keeping its shading and texture. --color takes "
                                   "'#RRGGBB', a catalogue or basic colour name, or a hue like 'hue:200'.")
    s.add_argument("image", metavar="IMAGE")
    s.add_argument("--color", required=True)
    s.add_argument("--out", required=True, metavar="OUT.png",
                   help=f"where to write the recoloured photo ({OUT_EXTS_TEXT}; not IMAGE itself)")
    s.add_argument("--part", default="full", metavar="upper|lower|full", help=PART_HELP)
    s.add_argument("--config", help="config whose catalogue supplies colour names")
    s.set_defaults(func=cmd_recolor)

    s = sub.add_parser("bench", help="benchmark the per-frame pipeline on a clip",
                       description="Runs hands, segmentation, gestures, recolouring and composition over N frames "
                                   "(decoding excluded, the clip loops) and prints fps and p50/p95 per stage. "
                                   "--naive also runs the naive pipeline for the ratio.")
    s.add_argument("video", metavar="VIDEO")
    s.add_argument("--frames", type=int, default=300, help="frames to process (default: 300)")
    s.add_argument("--json", action="store_true", help="end with one JSON line of the results")
    s.add_argument("--naive", action="store_true", help="also run the naive pipeline and print the ratio")
    s.add_argument("--config", help="config file (vision and display settings)")
    s.set_defaults(func=cmd_bench)

    s = sub.add_parser("replay", help="run the kiosk headless on a clip and list the actions it fires",
                       description="Runs the real kiosk (vision, engagement, gestures, session), headless and "
                                   "with no camera, network or reader, on VIDEO at its own frame rate in clip "
                                   "time (faster or slower than real time, with the same results). Prints each "
                                   "action as it fires: clip time, action and source (gesture:NAME, "
                                   "motion:swipe_left|swipe_right|circle, button:CONTROL). Use it to check a "
                                   "store's lighting and camera placement, or to count false triggers on clips "
                                   "of people who are not using the mirror. Progress goes to stderr.")
    s.add_argument("video", metavar="VIDEO")
    s.add_argument("--seconds", type=float, metavar="S",
                   help="seconds of clip time to run, above 0 and at most 86400 (24 h), looping the clip; "
                        "at least one frame runs (default: the clip once)")
    s.add_argument("--json", action="store_true",
                   help='end with one JSON line: {"seconds", "frames", "actions": [{"t", "action", "source"}], '
                        '"actions_per_min"}')
    s.add_argument("--config", help="config file (gesture, engagement and vision settings)")
    s.set_defaults(func=cmd_replay)

    s = sub.add_parser("call", help="the friend call: make a join link",
                       description="Talks to the running kiosk over its control socket (control.socket).")
    call_sub = s.add_subparsers(dest="call_command", metavar="CALL_COMMAND", required=True)
    c = call_sub.add_parser("link", help="ask the running kiosk for a fresh join link",
                            description="Prints a fresh single-use join link for the shopper at the mirror; it "
                                        "expires after call.link_ttl_s. The mirror shows it as a QR code too. "
                                        'With --json: {"url": ..., "expires": UNIX_SECONDS}.')
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.add_argument("--config", help="the config the kiosk runs with (for its control socket)")
    c.set_defaults(func=cmd_call_link)

    s = sub.add_parser("snapshot", help="write the running kiosk's composed frame to a PNG",
                       description="Asks the running kiosk (over its control socket) for the picture it shows "
                                   "now, overlays included, and writes it to --out as the calling user. The "
                                   "kiosk itself never writes an image.")
    s.add_argument("--out", required=True, metavar="FILE.png")
    s.add_argument("--config", help="the config the kiosk runs with (for its control socket)")
    s.set_defaults(func=cmd_snapshot)

    s = sub.add_parser("status", help="health of the running kiosk",
                       description="Asks the running kiosk over its control socket: fps, frames, camera, whether "
                                   "someone is present, the reader, the checkout and the call (when on), staff "
                                   "console clients, the last warnings and errors with their time, resident "
                                   "memory (rss_mb), open file descriptors, threads and uptime.")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.add_argument("--config", help="the config the kiosk runs with (for its control socket)")
    s.set_defaults(func=cmd_status)

    s = sub.add_parser("bench-call", help="benchmark a friend call end to end in headless Chromium",
                       description="Creates a network namespace, starts the kiosk headless on a clip inside it, "
                                   "joins from Debian's headless Chromium with a fake camera, admits the friend "
                                   "and measures for S seconds: browser fps and freezes from getStats(), "
                                   "glass-to-glass latency from a time code stamped into the frames, and the "
                                   "mirror's own fps. Needs root (for the namespace) and /usr/bin/chromium.")
    s.add_argument("--seconds", type=float, default=30.0, help="how long to measure (default: 30)")
    s.add_argument("--json", action="store_true", help="print one JSON line")
    s.add_argument("--video", help="clip the kiosk plays (default: the bundled demo clip)")
    s.set_defaults(func=cmd_bench_call)

    s = sub.add_parser("bench-staff", help="benchmark a staff push, from the console's request to the mirror",
                       description="Starts the kiosk headless on a clip (a shopper present), logs in to the staff "
                                   "console, opens /staff/ws and pushes suggestions N times through POST "
                                   "/staff/api/suggestions. Measures from the moment each request is sent to the "
                                   "first composed frame that shows its card, and samples the mirror's fps "
                                   "throughout (progress on stderr). The last line with --json is "
                                   '{"pushes", "push_to_frame_p50_ms", "push_to_frame_p95_ms", "mirror_fps", ...}.')
    s.add_argument("--pushes", type=int, default=40, help="how many pushes (default: 40)")
    s.add_argument("--json", action="store_true", help="print one JSON line")
    s.add_argument("--video", help="clip the kiosk plays (default: the bundled demo clip)")
    s.set_defaults(func=cmd_bench_staff)

    s = sub.add_parser("soak", help="run the whole kiosk for M minutes under load and watch for leaks",
                       description="Runs `mirror run --headless` on the bundled clip, looping, with a friend call "
                                   "from headless Chromium every few minutes (root, ip and chromium needed; else "
                                   "skipped), a card tap through a private pcscd and vpcd every 20 s (when pcscd "
                                   "is installed), and samples the kiosk's RSS, open files, threads and fps every "
                                   "10 s (progress on stderr). Prints the targets and whether each was met; the "
                                   'last line with --json is {"minutes", "rss_start_mb", "rss_end_mb", '
                                   '"rss_slope_mb_per_h", "fd_growth", "thread_growth", "fps_p5", "errors"}. '
                                   "Exits 0 whether or not the targets are met.")
    s.add_argument("--minutes", type=float, default=30.0, help="how long to run (default: 30)")
    s.add_argument("--json", action="store_true", help="end with one JSON line")
    s.set_defaults(func=cmd_soak)

    s = sub.add_parser("nfc", help="NFC reader tools: read a tag",
                       description="NFC tools on the PC/SC stack (pcscd).")
    nfc_sub = s.add_subparsers(dest="nfc_command", metavar="NFC_COMMAND", required=True)
    c = nfc_sub.add_parser("read", help="wait for a tag and print its UID and NDEF records",
                           description='Waits for a tag, then prints {"reader", "uid", "ndef": [{"tnf", "type", '
                                       '"payload_hex", "text"?, "uri"?}]}. Type 4 tags are read with SELECT/READ '
                                       "BINARY in chunks of at most MLe; other cards give their UID and no records. "
                                       "A card moved away mid-read gives no result; tap again.")
    c.add_argument("--reader", help="only readers whose name contains this (default: any)")
    c.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for a tag (default: 30)")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.set_defaults(func=cmd_nfc_read)

    s = sub.add_parser("orders", help="list the orders, their states and delivery attempts, and reservations",
                       description="The staff view of the order journal: every order with its code, state, "
                                   "payment status and delivery attempts to the store, then the items put aside.")
    s.add_argument("--json", action="store_true", help='print one JSON object {"orders": [...], "reservations": [...]}')
    s.add_argument("--config", help="config file whose checkout.db_path to read")
    s.add_argument("--db", help="order journal file (overrides the config)")
    s.set_defaults(func=cmd_orders)

    s = sub.add_parser("bench-checkout", help="benchmark tap-to-checkout through a real pcscd and vpcd",
                       description="Starts a private pcscd with the vpcd reader, a loopback store checkout that "
                                   "fails on purpose, and the checkout host; runs N random taps (single, double, "
                                   "pulled mid-read, other card, cancel; with --chaos also kills and restarts) "
                                   "and checks that no order was lost or duplicated. Prints tap-to-confirm "
                                   "p50/p95 (pcscd card-present event to the first composed frame showing the "
                                   "confirmation) and the same from the card's socket connect.")
    s.add_argument("--taps", type=int, default=200, help="card presentations (default: 200)")
    s.add_argument("--chaos", action="store_true", help="also SIGKILL the checkout process at random points")
    s.add_argument("--json", action="store_true", help="print one JSON line")
    s.add_argument("--seed", type=int, help="random seed (default: random, printed in the result)")
    s.add_argument("--kill-rate", type=float, default=0.05,
                   help="with --chaos, the share of shoppers whose tap meets a kill (default: 0.05)")
    s.set_defaults(func=cmd_bench_checkout)

    # Not listed: the kiosk's checkout path without camera/vision, driven over
    # stdin/stdout by bench-checkout and the crash tests (nfc/host.py).
    s = sub.add_parser("checkout-host", description="(internal) the checkout path of the kiosk, driven over stdio")
    s.add_argument("--config")
    s.add_argument("--duration", type=float)
    s.set_defaults(func=cmd_checkout_host)

    _add_catalog_and_staff_parsers(sub)

    s = sub.add_parser("check-config", help="validate a config file and list every problem")
    s.add_argument("file", metavar="FILE")
    s.set_defaults(func=cmd_check_config)
    return p


def _chosen_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The innermost subcommand's parser that `args` went through (`mirror staff add-user`'s)."""
    while True:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        name = getattr(args, subs[0].dest, None) if subs else None
        if name not in (subs[0].choices if subs else ()):
            return parser
        parser = subs[0].choices[name]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:       # said by the subcommand that was given them, with its own usage line
        _chosen_parser(parser, args).error(f"unrecognized arguments: {' '.join(extra)}")
    if not args.verbose:
        _quiet_native_logs()
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    from mirror.app.logs import setup_logging
    setup_logging(verbose=args.verbose, journal=args.command in ("run", "demo"))
    from mirror.core.catalog import CatalogError
    from mirror.core.config import ConfigError
    from vision.capture import SourceError
    from mirror.core.colors import ColorError
    from vision.models import ModelError
    from call.tokens import SecretFileError
    from mirror.app.control import AnotherKiosk
    try:
        rc = args.func(args)
        sys.stdout.flush()          # inside the try: a reader that went away is seen here
        if args.command in ("run", "demo"):
            # The kiosk has stopped its own threads; MediaPipe's native threads and
            # daemon threads can still race interpreter teardown (a fatal error on
            # a busy stderr has been seen to abort), so leave without it.
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(rc)
        return rc
    except ConfigError as e:
        return _fail(f"{e.source}: {e.problems[0]}" + (f" (and {len(e.problems) - 1} more; run mirror check-config)"
                                                      if len(e.problems) > 1 else ""))
    except (UsageError, SourceError, CatalogError, ColorError, ModelError, SecretFileError, AnotherKiosk) as e:
        return _fail(str(e))
    except KeyboardInterrupt:
        _say_stopped(f"mirror {args.command}: interrupted")
        return 130
    except BrokenPipeError:
        # `mirror gesture *.jpg | head -1`: the reader has what it wanted; leave
        # quietly, as a tool killed by SIGPIPE would (and keep Python's exit-time
        # flush from failing on the same pipe)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
