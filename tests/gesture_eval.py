"""The gesture recogniser on unseen photos (tests/data/unseen/gestures/labels.csv).

    python -m tests.gesture_eval [tune|holdout|all] [--failures] [--no-cache]
    python -m tests.gesture_eval rebuild OWNER/NAME=GIT_DIR ...

Each photo goes through the path `mirror gesture` takes (the same static
"full" tracker, `find_hands_in_photo`, `classify` per hand, `best_of`). A
vocabulary photo is right when the gesture is named; any vocabulary gesture on
a photo outside the vocabulary is a false action. The landmarks are cached
(keyed by the photo's SHA-256) so that re-running after a classifier change
takes seconds; the cache holds no decisions.

`rebuild` copies the photos back from local git mirrors of their source
repositories (`git cat-file blob`, checked against the SHA-256 in labels.csv):
the photos themselves are not committed.
"""

from __future__ import annotations

import csv
import hashlib
import os
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

DIR = Path(__file__).parent / "data" / "unseen" / "gestures"
CACHE = Path(os.environ.get("GESTURE_EVAL_CACHE", "/tmp/mirror-gesture-eval-landmarks.npz"))


def rows(split: str = "all") -> list[dict]:
    with open(DIR / "labels.csv", newline="") as f:
        return [r for r in csv.DictReader(f) if split in ("all", r["split"])]


def expected(row: dict) -> str:
    """The gesture a photo must give: its label in the vocabulary, else none."""
    return row["label"] if row["group"] == "vocab" else "none"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def landmarks(todo: list[dict], use_cache: bool = True) -> dict[str, list[np.ndarray]]:
    """file -> the (21, 3) landmark sets `mirror gesture` finds in it."""
    from vision.capture import read_image
    from vision.hands import HandTracker, find_hands_in_photo
    cache: dict[str, list[np.ndarray]] = {}
    if use_cache and CACHE.exists():
        z = np.load(CACHE)
        cache = {k: list(z[k]) for k in z.files}
    tracker = None
    out, dirty = {}, False
    for r in todo:
        key = r["sha256"]
        if key not in cache:
            if tracker is None:   # as in mirror/app/cli.py cmd_gesture
                tracker = HandTracker(static=True, model="full", max_hands=2, min_conf=0.3, width=None)
            hands = find_hands_in_photo(tracker, read_image(str(DIR / r["file"])))
            cache[key], dirty = [h.points for h in hands], True
        out[r["file"]] = cache[key]
    if dirty and use_cache:
        np.savez_compressed(CACHE, **{k: np.array(v, np.float32).reshape(-1, 21, 3) for k, v in cache.items()})
    return out


def evaluate(split: str, use_cache: bool = True, failures: bool = False) -> dict:
    from vision import gestures as G
    todo = [r for r in rows(split) if r["group"] != "ambiguous" and (DIR / r["file"]).exists()]
    missing = sum(1 for r in rows(split) if not (DIR / r["file"]).exists())
    pts = landmarks(todo, use_cache)
    confusion: dict[str, Counter] = defaultdict(Counter)
    by_source: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])   # right, vocab, false, non-vocab
    vocab = [0, 0]
    false = [0, 0]
    wrong = []
    for r in todo:
        got = G.photo_gesture(pts[r["file"]]).gesture
        confusion[r["label"]][got] += 1
        want = expected(r)
        src = by_source[r["source_repo"]]
        if want != "none":
            vocab[0] += got == want
            vocab[1] += 1
            src[0] += got == want
            src[1] += 1
        else:
            false[0] += got != "none"
            false[1] += 1
            src[2] += got != "none"
            src[3] += 1
        if got != want:
            wrong.append((r["file"], want, got, len(pts[r["file"]])))
    print(f"== {split}: {len(todo)} photos ({missing} listed but missing)")
    print(f"vocabulary named right: {vocab[0]}/{vocab[1]} = {vocab[0] / max(1, vocab[1]):.1%}")
    print(f"false actions outside it: {false[0]}/{false[1]} = {false[0] / max(1, false[1]):.1%}")
    for repo, (a, n, b, m) in sorted(by_source.items()):
        print(f"  {repo:40} vocabulary {a}/{n}, false actions {b}/{m}")
    cols = ["none", *G.VOCABULARY]
    print(f"{'label':18}" + "".join(f"{c[:9]:>10}" for c in cols))
    for label in sorted(confusion, key=lambda k: (k not in G.VOCABULARY, k)):
        print(f"{label:18}" + "".join(f"{confusion[label][c] or '.':>10}" for c in cols))
    if failures:
        for f, want, got, n in wrong:
            print(f"  {f}: want {want}, got {got} ({n} hands)")
    return {"vocab": vocab, "false": false}


def rebuild(mirrors: dict[str, str]) -> None:
    done = bad = 0
    for r in rows():
        dst = DIR / r["file"]
        git_dir = mirrors.get(r["source_repo"])
        if dst.exists() or not git_dir:
            continue
        blob = subprocess.run(["git", "--git-dir", git_dir, "cat-file", "blob", r["git_blob"]],
                              capture_output=True, check=True).stdout
        if hashlib.sha256(blob).hexdigest() != r["sha256"]:
            bad += 1
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(blob)
        done += 1
    print(f"copied {done} photos, {bad} did not match their SHA-256")


def main(argv: list[str]) -> int:
    if argv[:1] == ["rebuild"]:
        rebuild(dict(a.split("=", 1) for a in argv[1:]))
        return 0
    splits = [a for a in argv if not a.startswith("--")] or ["tune"]
    for split in splits:
        evaluate(split, "--no-cache" not in argv, "--failures" in argv)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
