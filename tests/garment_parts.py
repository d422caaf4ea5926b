"""Per-part garment truth (tests/data/garment_parts) and the IoU of `PhotoSegmenter` against it.

Run `python -m tests.garment_parts tune|holdout|all` for the table. The photos
live in tests/data/unseen/garments (not committed; PROVENANCE.md there says how
to fetch them again).

`--heights 0,700,1000,1400 --mirror` scores every photo at those heights (0 =
as it is) and mirrored left to right as well, and averages them: the same
photos in other pixels. The spread between a photo's variants shows where a
rule is knife-edged, which a single run hides. `--crop 0.05` first cuts each
photo to her (the person mask's box and that share of its size around it), as
a tight fashion photo would be framed. `--tone cool|warm|dark|bright|jpeg`
scores the photos as another camera or a filter would have left them (see
`TONES`): the same pixels in other colours.

`python -m tests.garment_parts rebuild OWNER/NAME=GIT_DIR ...` copies the photos
back from local git mirrors of their sources, as PROVENANCE.md's table lists
them (a byte copy fetched by its git blob hash, or a clip's frame written as PNG).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).parent / "data"
PARTS_DIR = HERE / "garment_parts"
PHOTOS = HERE / "unseen" / "garments"


def specs(split: str = "all") -> list[dict]:
    out = []
    for p in sorted(PARTS_DIR.glob("*.json")):
        spec = json.loads(p.read_text())
        spec["name"] = p.stem
        if split in ("all", spec["split"]):
            out.append(spec)
    return out


def _fill(shape, polys) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    for poly in polys:
        cv2.fillPoly(m, [np.array(poly, np.int32)], 1)
    return m > 0


def truth(spec: dict, shape: tuple[int, int]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """{"upper", "lower", "full"} boolean masks and the ignored pixels."""
    no = _fill(shape, spec.get("not_garment", []))
    upper = _fill(shape, spec.get("upper", [])) & ~no
    lower = _fill(shape, spec.get("lower", [])) & ~no & ~upper
    full = (upper | lower | _fill(shape, spec.get("other", []))) & ~no
    return {"upper": upper, "lower": lower, "full": full}, _fill(shape, spec.get("ignore", []))


def iou(mine: np.ndarray, want: np.ndarray, ignore: np.ndarray) -> float:
    keep = ~ignore
    union = ((mine | want) & keep).sum()
    return float(((mine & want) & keep).sum() / union) if union else 1.0


# Photometric changes a photo may come with: a white balance set for other
# light (BGR channel gains), a tone curve (exponent on 0..1 values), heavy JPEG.
TONES = {"cool": ("gains", (1.12, 1.0, 0.88)), "warm": ("gains", (0.88, 1.0, 1.1)),
         "dark": ("gamma", 1.5), "bright": ("gamma", 0.7), "jpeg": ("quality", 50)}


def toned(img: np.ndarray, tone: str | None) -> np.ndarray:
    """`img` (BGR uint8) as `tone` (a key of TONES, or None: as it is) leaves it."""
    if tone is None:
        return img
    how, arg = TONES[tone]
    if how == "gains":
        from vision.photo_segmenter import white_balanced
        return white_balanced(img, arg)
    if how == "gamma":
        return np.round(255 * (img / 255.0) ** arg).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, arg])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


def _variant(img: np.ndarray, height: int, mirror: bool, tone: str | None = None) -> np.ndarray:
    if mirror:
        img = np.ascontiguousarray(img[:, ::-1])
    if height:
        s = height / img.shape[0]
        img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    return toned(img, tone)


def _around_her(img: np.ndarray, person: np.ndarray, margin: float) -> tuple[slice, slice]:
    """Rows and columns of `img` round the person mask's extent, `margin` of its size around it."""
    from vision.person import person_box
    box = person_box(person, (img.shape[1], img.shape[0]), margin)
    if box is None:
        return slice(None), slice(None)
    x0, y0, x1, y1 = box
    return slice(y0, y1), slice(x0, x1)


def evaluate(split: str, segmenter=None, height: int = 0, mirror: bool = False,
             crop: float | None = None, tone: str | None = None) -> list[dict]:
    """One row per photo: its IoU per part, with the photo cut to her with
    `crop` of her size around her (None: not cut), resized to `height` (0: as
    it is), mirrored and/or toned (`toned`); scored at the (cut) photo's own size."""
    from vision.photo_segmenter import PhotoSegmenter
    seg = segmenter or PhotoSegmenter()
    rows = []
    for spec in specs(split):
        img = cv2.imread(str(PHOTOS / spec["image"]))
        if img is None:
            raise FileNotFoundError(f"{PHOTOS / spec['image']} is missing; see PROVENANCE.md there")
        want, ignore = truth(spec, img.shape[:2])
        if crop is not None:
            rows_, cols = _around_her(img, seg.person.process(img), crop)
            img, ignore = img[rows_, cols], ignore[rows_, cols]
            want = {k: v[rows_, cols] for k, v in want.items()}
        shown = _variant(img, height, mirror, tone)
        row = {"name": spec["name"], "split": spec["split"]}
        mattes = seg.garments(shown, parts=("upper", "lower", "full"))
        for part in ("upper", "lower", "full"):
            m = cv2.resize(mattes[part], (img.shape[1], img.shape[0]))
            if mirror:
                m = m[:, ::-1]
            row[part] = round(iou(m >= 0.5, want[part], ignore), 3)
        row["kind"] = seg.last_model.parts.kind if seg.last_model and seg.last_model.parts else "-"
        rows.append(row)
    return rows


def provenance_rows() -> list[dict]:
    """The Files table of PROVENANCE.md: split, name, repo, commit, path, blob."""
    rows = []
    for line in (PHOTOS / "PROVENANCE.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0] in ("tune", "holdout"):
            rows.append(dict(zip(("split", "name", "repo", "commit", "path", "blob"), cells)))
    return rows


def _git(git_dir: str, *args: str) -> bytes:
    return subprocess.run(["git", "--git-dir", git_dir, *args], capture_output=True, check=True).stdout


def rebuild(mirrors: dict[str, str]) -> None:
    done = bad = missing = 0
    for r in provenance_rows():
        dst = PHOTOS / r["split"] / r["name"]
        git_dir = mirrors.get(r["repo"])
        if dst.exists():
            continue
        if not git_dir:
            missing += 1
            continue
        frame = re.fullmatch(r"(.+) \(frame (\d+)\)", r["path"])
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            if frame is None:
                # addressed by its blob hash, so git hands back exactly the traced bytes
                dst.write_bytes(_git(git_dir, "cat-file", "blob", r["blob"]))
                done += 1
                continue
            # a clip's frame: the commit cell holds the clip's commit, or its blob
            kind = _git(git_dir, "cat-file", "-t", r["commit"]).decode().strip()
            data = _git(git_dir, "cat-file", "blob", r["commit"] if kind == "blob" else f"{r['commit']}:{frame[1]}")
        except subprocess.CalledProcessError:
            print(f"{r['name']}: not in {git_dir} (fetch a newer mirror of {r['repo']})", file=sys.stderr)
            bad += 1
            continue
        with tempfile.NamedTemporaryFile(suffix=Path(frame[1]).suffix) as clip:
            clip.write(data)
            clip.flush()
            cap = cv2.VideoCapture(clip.name)
            for _ in range(int(frame[2]) + 1):
                ok, img = cap.read()
            cap.release()
            if not ok:
                bad += 1
                continue
            cv2.imwrite(str(dst), img)
            done += 1
    print(f"wrote {done} photos; {missing} have no mirror given; {bad} could not be read")


def main(argv: list[str]) -> None:
    if argv[:1] == ["rebuild"]:
        rebuild(dict(a.split("=", 1) for a in argv[1:]))
        return
    import argparse
    ap = argparse.ArgumentParser(prog="python -m tests.garment_parts",
                                 description="IoU of PhotoSegmenter's parts against the traced truth.")
    ap.add_argument("split", nargs="?", default="tune", choices=["tune", "holdout", "all"])
    ap.add_argument("--heights", default="0", help="comma-separated heights in px to score each photo at (0: as it is)")
    ap.add_argument("--mirror", action="store_true", help="also score every photo mirrored left to right")
    ap.add_argument("--crop", type=float, default=None, metavar="MARGIN",
                    help="first cut each photo to her, with MARGIN of her size around her (e.g. 0.05)")
    ap.add_argument("--tone", choices=sorted(TONES), default=None,
                    help="score the photos in other colours: a white balance for other light, a tone curve, JPEG q50")
    args = ap.parse_args(argv)
    try:
        heights = [int(h) for h in args.heights.split(",")]
    except ValueError:
        ap.error(f"--heights takes numbers like 0,700,1000, not {args.heights!r}")
    variants = [(h, m) for m in ([False, True] if args.mirror else [False]) for h in heights]
    from vision.photo_segmenter import PhotoSegmenter
    seg = PhotoSegmenter()
    runs = []
    for i, (h, m) in enumerate(variants, 1):
        print(f"[{i}/{len(variants)}] height {h or 'as is'}{', mirrored' if m else ''}"
              f"{', ' + args.tone if args.tone else ''}", file=sys.stderr, flush=True)
        runs.append(evaluate(args.split, seg, h, m, args.crop, args.tone))
    parts = ("upper", "lower", "full")
    # rows paired by photo, not by place: a truth added while it runs is left out, not misaligned
    by_name = [{r["name"]: r for r in run} for run in runs]
    names = [row["name"] for row in runs[0] if all(row["name"] in rows for rows in by_name)]
    runs = [[rows[name] for name in names] for rows in by_name]
    print(f"{'photo':32} {'split':8} {'upper':>6} {'lower':>6} {'full':>6}  {'upper range':>11}  kind")
    for k, row in enumerate(runs[0]):
        mine = [run[k] for run in runs]
        ups = [r["upper"] for r in mine]
        kinds = sorted({r["kind"] for r in mine})
        print(f"{row['name']:32} {row['split']:8} " + " ".join(f"{np.mean([r[p] for r in mine]):6.3f}" for p in parts)
              + f"  {max(ups) - min(ups):11.3f}  {'/'.join(kinds)}")
    for p in parts:
        per_photo = np.mean([[r[p] for r in run] for run in runs], axis=0)
        print(f"{p}: mean {per_photo.mean():.3f} min {per_photo.min():.3f}")
    if len(runs) > 1:
        for (h, m), run in zip(variants, runs):
            print(f"  height {h or 'as is':>5}{' mirrored' if m else '         '}: "
                  + " ".join(f"{p} {np.mean([r[p] for r in run]):.3f}" for p in parts))


if __name__ == "__main__":
    main(sys.argv[1:])
