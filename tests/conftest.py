import os
from pathlib import Path

import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
os.environ.pop("DISPLAY", None)

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ROOT.parent / "shared" / "media"


@pytest.fixture(scope="session")
def media() -> Path:
    assert MEDIA.is_dir(), f"the shared test media are expected at {MEDIA}"
    return MEDIA


@pytest.fixture(scope="session")
def photo_segmenter():
    from vision.segmentation import PhotoSegmenter
    return PhotoSegmenter()


# --- NFC checkout (issue 4): one fresh private pcscd per session, store server ---
from tests.pcsc_fixtures import pcscd, store  # noqa: E402,F401
