import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
os.environ.pop("DISPLAY", None)
# A kiosk started without checkout.db_path keeps its database (orders, catalogue, staff) under
# XDG_STATE_HOME: one throw-away folder per test run, never the real ~/.local/state.
os.environ.pop("STATE_DIRECTORY", None)
os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="mirror-tests-state-")
# Removed when this process ends, so months of CI runs do not fill /tmp.
atexit.register(shutil.rmtree, os.environ["XDG_STATE_HOME"], True)

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ROOT.parent / "shared" / "media"


@pytest.fixture(scope="session")
def media() -> Path:
    assert MEDIA.is_dir(), f"the shared test media are expected at {MEDIA}"
    return MEDIA


@pytest.fixture(scope="session")
def photo_segmenter():
    from vision.photo_segmenter import PhotoSegmenter
    return PhotoSegmenter()


# --- NFC checkout (issue 4): one fresh private pcscd per session, store server ---
from tests.pcsc_fixtures import pcscd, store  # noqa: E402,F401
