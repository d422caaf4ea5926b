"""The pygame compositor: the mirrored view and the overlays registered on it."""

import os

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
