"""Per-part garment truth (tests/data/garment_parts) and the IoU of `PhotoSegmenter` against it.

Run `python -m tests.garment_parts tune|holdout|all` for the table. The photos
live in tests/data/unseen/garments (not committed; PROVENANCE.md there says how
to fetch them again).
"""

from __future__ import annotations

import json
import sys
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


def evaluate(split: str, segmenter=None) -> list[dict]:
    from vision.segmentation import PhotoSegmenter
    seg = segmenter or PhotoSegmenter()
    rows = []
    for spec in specs(split):
        img = cv2.imread(str(PHOTOS / spec["image"]))
        if img is None:
            raise FileNotFoundError(f"{PHOTOS / spec['image']} is missing; see PROVENANCE.md there")
        want, ignore = truth(spec, img.shape[:2])
        row = {"name": spec["name"], "split": spec["split"]}
        for part in ("upper", "lower", "full"):
            row[part] = round(iou(seg.garment(img, part=part) >= 0.5, want[part], ignore), 3)
        row["kind"] = seg.last_model.parts.kind if seg.last_model and seg.last_model.parts else "-"
        rows.append(row)
    return rows


if __name__ == "__main__":
    rows = evaluate(sys.argv[1] if len(sys.argv) > 1 else "tune")
    print(f"{'photo':32} {'split':8} {'upper':>6} {'lower':>6} {'full':>6}  kind")
    for r in rows:
        print(f"{r['name']:32} {r['split']:8} {r['upper']:6.3f} {r['lower']:6.3f} {r['full']:6.3f}  {r['kind']}")
    for part in ("upper", "lower", "full"):
        v = [r[part] for r in rows]
        print(f"{part}: mean {np.mean(v):.3f} min {np.min(v):.3f}")
