"""Bounded input: every absurd input makes the real CLI exit 2 with one line on
stderr naming the problem, with no traceback, within 60 s and 2 GB."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 60
MAX_RSS_KB = 2 * 1024 * 1024          # ru_maxrss is in KiB on Linux

# Runs the CLI as its child and reports the child's peak memory on the fd in
# argv[1], so other tests' children do not count (RUSAGE_CHILDREN is per parent).
_MEASURE = ("import os, resource, subprocess, sys\n"
            "rc = subprocess.run(sys.argv[2:]).returncode\n"
            "os.write(int(sys.argv[1]), str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss).encode())\n"
            "sys.exit(rc)\n")


def mirror(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mirror", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=TIMEOUT, env=env)


def mirror_measured(*args: str) -> tuple[subprocess.CompletedProcess, int]:
    """The CLI run, and its peak resident memory in KiB."""
    r_fd, w_fd = os.pipe()
    try:
        r = subprocess.run([sys.executable, "-c", _MEASURE, str(w_fd), sys.executable, "-m", "mirror", *args],
                           cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT, pass_fds=(w_fd,))
    finally:
        os.close(w_fd)
    with os.fdopen(r_fd) as f:
        return r, int(f.read() or 0)


def refused(r: subprocess.CompletedProcess, *words: str) -> str:
    """Exit 2, exactly one stderr line that names the problem, no traceback."""
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, r.stderr[-3000:]
    assert r.returncode == 2, (r.returncode, r.stderr[-3000:])
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr[-3000:]
    for w in words:
        assert w.lower() in lines[0].lower(), lines[0]
    return lines[0]


# --- images ---------------------------------------------------------------------------------------
def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def huge_png(path: Path, w: int = 20000, h: int = 20000) -> Path:
    """A valid-looking RGB PNG of w x h: the IHDR says so, the IDAT is ~1 MB of compressed zeros."""
    row = b"\0" * (1 + 3 * w)
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(min(h, 1000))) + comp.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                     + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))
    return path


def test_a_huge_png_is_refused_from_its_header_before_decoding(tmp_path):
    big = huge_png(tmp_path / "big.png")
    r, rss_kb = mirror_measured("segment", str(big), "--out", str(tmp_path / "mask.png"))
    line = refused(r, "20000x20000", "40 MP", str(big))
    assert "scale it down" in line
    assert rss_kb < MAX_RSS_KB, f"peak memory {rss_kb / 1024:.0f} MB: the image was decoded"
    assert not (tmp_path / "mask.png").exists()


def test_a_truncated_photo_warns_and_still_works(tmp_path, media):
    data = (media / "images" / "portrait_suit.jpg").read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) * 2 // 3])
    r = mirror("segment", str(cut), "--out", str(tmp_path / "mask.png"))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    warnings = [ln for ln in r.stderr.splitlines() if "truncated" in ln]
    assert len(warnings) == 1 and "cut.jpg" in warnings[0], r.stderr
    assert (tmp_path / "mask.png").exists()


def test_the_grey_a_truncated_jpeg_leaves_below_what_decodes_is_not_garment(tmp_path, media):
    # a baseline JPEG cut in half decodes its top rows; the decoder fills the
    # rest with one grey, which the segmenter took for clothing (52% of the
    # picture where the whole photo gives 41%) and recolor painted over
    import cv2
    import numpy as np
    whole = tmp_path / "whole.jpg"
    cv2.imwrite(str(whole), cv2.imread(str(media / "images" / "portrait_suit.jpg")), [cv2.IMWRITE_JPEG_QUALITY, 90])
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    r = mirror("segment", str(cut), "--out", str(tmp_path / "mask.png"))
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-3000:]
    [warning] = [ln for ln in r.stderr.splitlines() if "truncated" in ln]
    assert warning.startswith(f"mirror: warning: {cut}: the file is truncated; only its top "), warning
    rows = int(warning.split("only its top ")[1].split()[0])
    img = cv2.imread(str(cut))
    assert 100 < rows < img.shape[0] and (img[rows:] == img[-1, 0]).all()      # the grey band
    mask = cv2.imread(str(tmp_path / "mask.png"), cv2.IMREAD_UNCHANGED)
    assert mask.shape == img.shape[:2] and not mask[rows:].any()
    # above the band, the cut is the whole photo's (his jacket's shoulders and lapels)
    r = mirror("segment", str(whole), "--out", str(tmp_path / "whole.png"))
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = mask[:rows] > 127, cv2.imread(str(tmp_path / "whole.png"), cv2.IMREAD_UNCHANGED)[:rows] > 127
    assert a.mean() > 0.1 and (a & b).sum() / (a | b).sum() > 0.8


def test_empty_cut_short_and_gif_files_are_told_apart(tmp_path):
    from PIL import Image
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    refused(mirror("segment", str(empty), "--out", str(tmp_path / "m.png")), "empty.jpg", "the file is empty")
    stub = tmp_path / "stub.jpg"
    stub.write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 60)
    refused(mirror("segment", str(stub), "--out", str(tmp_path / "m.png")), "stub.jpg", "cut short")
    gif = tmp_path / "anim.gif"
    Image.new("RGB", (64, 64), (200, 30, 30)).save(gif)
    refused(mirror("segment", str(gif), "--out", str(tmp_path / "m.png")), "anim.gif", "GIF", "use a JPEG or PNG")


@pytest.mark.parametrize("command", ["segment", "recolor"])
def test_a_missing_output_folder_is_refused_before_the_work(tmp_path, media, command):
    colour = ["--color", "red"] if command == "recolor" else []
    r = mirror(command, str(media / "images" / "victory.jpg"), *colour, "--out", str(tmp_path / "nodir" / "m.png"))
    refused(r, "output folder", "nodir", "does not exist", "create it first")
    # said before any model loaded: the stdout of a run that got that far is empty too
    assert r.stdout == ""


def test_a_reader_that_stops_early_ends_the_command_quietly(media):
    # `mirror gesture *.jpg | head -1`: the pipe closes after the first line
    photos = [str(media / "images" / n) for n in ("victory.jpg", "open_palms.jpg")] * 20
    p = subprocess.Popen([sys.executable, "-m", "mirror", "gesture", *photos], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline().startswith("{")
    p.stdout.close()
    err = p.stderr.read()
    assert p.wait(timeout=TIMEOUT) == 141 and "Traceback" not in err and "BrokenPipe" not in err, err


def test_a_truncated_png_that_does_not_decode_is_a_clear_error(tmp_path, media):
    import cv2
    png = tmp_path / "whole.png"
    cv2.imwrite(str(png), cv2.imread(str(media / "images" / "victory.jpg")))
    cut = tmp_path / "cut.png"
    cut.write_bytes(png.read_bytes()[:2000])
    refused(mirror("segment", str(cut), "--out", str(tmp_path / "mask.png")), "cut.png", "truncated")


@pytest.mark.parametrize("shape,says", [((3, 4000), "4000x3"), ((8000, 1), "1x8000"), ((12, 12), "12x12")],
                         ids=["3x4000-strip", "1x8000-column", "12px-speck"])
@pytest.mark.parametrize("command", ["segment", "recolor"])
def test_a_strip_or_a_speck_is_not_a_photo_of_a_person(tmp_path, shape, says, command):
    """The segmenter scales the short side up to its work size: a 3x4000 strip took
    gigabytes and ended in a cv2 traceback. Refused from the header instead."""
    import cv2
    import numpy as np
    img = tmp_path / "odd.png"
    cv2.imwrite(str(img), np.full((*shape, 3), 128, np.uint8))
    colour = ["--color", "red"] if command == "recolor" else []
    r, rss_kb = mirror_measured(command, str(img), *colour, "--out", str(tmp_path / "out.png"))
    refused(r, "odd.png", f"{says} pixels", "8:1", "16 px")
    assert rss_kb < MAX_RSS_KB, f"peak memory {rss_kb / 1024:.0f} MB"
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("command", ["segment", "recolor"])
def test_out_may_not_be_the_input_photo(tmp_path, media, command):
    photo = tmp_path / "me.jpg"
    shutil.copy(media / "images" / "victory.jpg", photo)
    (tmp_path / "link.jpg").symlink_to(photo)
    os.link(photo, tmp_path / "hard.jpg")
    before = photo.read_bytes()
    colour = ["--color", "red"] if command == "recolor" else []
    for image, out in (("me.jpg", "me.jpg"), (str(photo), "./me.jpg"), ("me.jpg", "link.jpg"),
                       ("link.jpg", "hard.jpg"), ("me.jpg", str(tmp_path / "sub" / ".." / "me.jpg"))):
        r = subprocess.run([sys.executable, "-m", "mirror", command, image, *colour, "--out", out], cwd=tmp_path,
                           capture_output=True, text=True, timeout=TIMEOUT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        refused(r, f"--out {out} is the input image", "choose another name")
    assert photo.read_bytes() == before


def test_out_names_every_image_type_it_accepts(tmp_path, media):
    r = mirror("segment", str(media / "images" / "victory.jpg"), "--out", str(tmp_path / "mask.gif"))
    line = refused(r, "mask.gif")
    for ext in (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp"):
        assert ext in line, line
    assert not (tmp_path / "mask.gif").exists()


# --- colours --------------------------------------------------------------------------------------
@pytest.mark.parametrize("colour", ["hue:" + "9" * 400, "hue:nan", "hue:inf", "#GGGGGG", "x" * 10240],
                         ids=["hue-400-nines", "hue-nan", "hue-inf", "hex-GGGGGG", "10KB-string"])
def test_absurd_colours_are_refused(tmp_path, media, colour):
    r = mirror("recolor", str(media / "images" / "victory.jpg"), "--color", colour, "--out", str(tmp_path / "o.png"))
    line = refused(r, "colour" if not colour.startswith("hue:9") else "hue")
    assert len(line) < 400, "the error echoes the whole input"
    assert not (tmp_path / "o.png").exists()


# --- the order report -------------------------------------------------------------------------------
def _journal(path: Path) -> Path:
    from mirror.storage.orders import OrderJournal
    j = OrderJournal(path)
    j.record_order(key="k1", session_id="s1", card_id="card", member_id=None, uid_hash="u",
                   cart={"items": [{"sku": "TOP-0412", "name": "Ribbed tank top", "price": "29.90"}]}, store=False)
    j.close()                       # the last connection checkpoints: no -wal left
    return path


def _listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.parametrize("kind", ["text", "folder", "empty", "other-sqlite"])
def test_orders_refuses_what_is_not_an_order_journal_and_changes_nothing(tmp_path, kind):
    target = tmp_path / "x.db"
    if kind == "text":
        target.write_text("this is not a database\n" * 50)
    elif kind == "folder":
        target.mkdir()
    elif kind == "empty":
        target.write_bytes(b"")
    else:
        db = sqlite3.connect(target)
        db.execute("CREATE TABLE notes (t TEXT)")
        db.commit()
        db.close()
    before = _listing(tmp_path)
    line = refused(mirror("orders", "--db", str(target)), str(target))
    assert ("folder" if kind == "folder" else "not an order journal") in line
    assert _listing(tmp_path) == before, "the report created or changed a file"
    if kind == "empty":
        assert target.stat().st_size == 0


def test_orders_reads_a_journal_in_a_read_only_folder_without_writing(tmp_path):
    folder = tmp_path / "state"
    folder.mkdir()
    db = _journal(folder / "orders.db")
    before = _listing(folder)
    folder.chmod(0o555)
    try:
        r = mirror("orders", "--json", "--db", str(db))
    finally:
        folder.chmod(0o755)
    assert r.returncode == 0, r.stderr
    assert [o["code"] for o in json.loads(r.stdout)["orders"]] and "Traceback" not in r.stderr
    assert _listing(folder) == before, "the report wrote next to the journal (a -wal, -shm or a conversion)"


def test_orders_on_a_read_only_mount(tmp_path):
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("a read-only bind mount needs root")
    src, ro = tmp_path / "src", tmp_path / "ro"
    src.mkdir()
    ro.mkdir()
    _journal(src / "orders.db")
    (src / "zero.db").write_bytes(b"")
    (src / "text.db").write_text("not sqlite\n")
    if subprocess.run(["mount", "--bind", "-o", "ro", str(src), str(ro)], capture_output=True).returncode != 0:
        pytest.skip("cannot make a read-only bind mount here")
    try:
        before = _listing(src)
        r = mirror("orders", "--json", "--db", str(ro / "orders.db"))
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
        assert len(json.loads(r.stdout)["orders"]) == 1
        refused(mirror("orders", "--db", str(ro / "zero.db")), "not an order journal")
        refused(mirror("orders", "--db", str(ro / "text.db")), "not an order journal")
        assert _listing(src) == before
    finally:
        subprocess.run(["umount", str(ro)], check=True)


# --- the catalogue ----------------------------------------------------------------------------------
BAD_CATALOGUES = {
    "products-not-a-list": ('products = "dress"\n', "'products' is a string"),
    "products-a-table": ('[products]\nsku = "A"\n', "'products' is a table"),
    "product-not-a-table": ("products = [1, 2]\n", "products[0]"),
    "colours-not-a-list": ('[[products]]\nsku = "A"\nname = "Dress"\ncolours = "red"\n', "products[0].colours"),
    "colour-not-a-table": ('[[products]]\nsku = "A"\nname = "Dress"\ncolours = ["red"]\n', "colours[0]"),
}


def _kiosk_config(tmp_path: Path, media: Path, catalogue: str) -> Path:
    import cv2
    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "0001.png"), cv2.imread(str(media / "images" / "pointing_up.jpg")))
    (tmp_path / "catalog.toml").write_text(catalogue)
    cfg = tmp_path / "kiosk.toml"
    cfg.write_text(f'[camera]\nsource = "images"\npath = "{frames}"\n[catalog]\npath = "{tmp_path / "catalog.toml"}"\n'
                   f'[control]\nsocket = "{tmp_path / "control.sock"}"\n'
                   "[call]\nenabled = false\n[nfc]\nenabled = false\n[checkout]\nenabled = false\n"
                   "[staff]\nenabled = false\n")
    return cfg


@pytest.mark.parametrize("command", ["check-config", "recolor"])
def test_a_config_that_is_a_folder_or_a_picture_says_so_plainly(tmp_path, media, command):
    # these said "cannot read it (IsADirectoryError: [Errno 21] ...)" and
    # "(UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff ...)"
    photo = str(media / "images" / "victory.jpg")
    for config, says in ((str(tmp_path), "is a folder; pass the TOML file itself"), (photo, "is not UTF-8 text")):
        args = ([config] if command == "check-config"
                else [photo, "--color", "red", "--config", config, "--out", str(tmp_path / "o.png")])
        line = refused(mirror(command, *args), config, says)
        assert "Error" not in line and "Errno" not in line, line


@pytest.mark.parametrize("case", list(BAD_CATALOGUES))
def test_a_malformed_catalogue_is_refused_by_check_config_and_run(tmp_path, media, case):
    text, words = BAD_CATALOGUES[case]
    cfg = _kiosk_config(tmp_path, media, text)
    refused(mirror("check-config", str(cfg)), "catalog.toml", words)
    env = dict(os.environ, SDL_VIDEODRIVER="dummy")
    refused(mirror("run", "--headless", "--duration", "20", "--config", str(cfg), env=env), "catalog.toml", words)


def test_catalogue_errors_name_the_line(tmp_path, media):
    cfg = _kiosk_config(tmp_path, media, '# the shop\n\n[[products]]\nsku = "A"\nname = "B"\n'
                                         'colours = [{ name = "Black", hex = "#000000" }]\n\n'
                                         '[[products]]\nsku = "C"\nname = "D"\ncolours = 7\n')
    refused(mirror("check-config", str(cfg)), "(line 8)", "products[1].colours", "a number")


# --- durations ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0"])
def test_demo_refuses_a_duration_that_is_not_a_positive_number(tmp_path, value):
    refused(mirror("demo", f"--seconds={value}", "--out", str(tmp_path / "out")), "--seconds", "positive")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("value", ["nan", "-inf", "0"])
def test_run_refuses_a_duration_that_is_not_a_positive_number(value):
    refused(mirror("run", "--headless", f"--duration={value}"), "--duration", "positive")


# --- the command line itself ----------------------------------------------------------------------
@pytest.mark.parametrize("argv, usage", [(("demo", "--bogus"), "mirror demo"),
                                         (("staff", "add-user", "ann", "--bogus"), "mirror staff add-user")])
def test_an_unknown_flag_is_refused_with_its_own_subcommands_usage(argv, usage):
    r = mirror(*argv)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith(f"usage: {usage} "), r.stderr
    assert f"{usage}: error: unrecognized arguments: --bogus" in r.stderr, r.stderr


def test_verbose_shows_our_debug_lines_without_the_libraries_chatter():
    code = ("import logging\n"
            "from mirror.app.logs import setup_logging\n"
            "setup_logging(verbose=True, journal=False)\n"
            "logging.getLogger('PIL.TiffImagePlugin').debug('tag: Orientation')\n"
            "logging.getLogger('matplotlib.font_manager').debug('font cache')\n"
            "logging.getLogger('matplotlib').info('a real notice')\n"
            "logging.getLogger('mirror.app.kiosk').debug('ours')\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT)
    assert "ours" in r.stderr and "a real notice" in r.stderr, r.stderr
    assert "Orientation" not in r.stderr and "font cache" not in r.stderr, r.stderr


def test_check_config_says_a_database_it_cannot_read_instead_of_ok(tmp_path):
    """It logged an ERROR and still printed "ok" for a checkout.db_path that is a folder."""
    (tmp_path / "orders.db").mkdir()
    r = mirror("check-config", "config/mirror.toml",
               env=dict(os.environ, MIRROR_CHECKOUT_DB_PATH=str(tmp_path / "orders.db")))
    line = refused(r, "cannot read the catalogue", "checkout.db_path")
    assert "ok" not in r.stdout
    # a corrupt one is no reason to keep the kiosk from starting (the unit runs check-config first):
    # mirror run moves it aside and starts afresh
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(os.urandom(8192))
    r = mirror("check-config", "config/mirror.toml", env=dict(os.environ, MIRROR_CHECKOUT_DB_PATH=str(corrupt)))
    assert r.returncode == 0 and r.stdout.strip().endswith(": ok"), r.stderr
    assert "corrupt" in r.stderr and "move it aside" in r.stderr
