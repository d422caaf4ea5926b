"""MediaPipe model construction, from the models bundled in the 0.10.21 wheel only.

mediapipe >= 0.10.30 (and Pose complexity 0 or 2) fetch weights at run time,
which a store kiosk must never do. `check_bundled()` fails early and clearly if
the installed wheel lacks a model we use.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

_REQUIRED = [
    "modules/hand_landmark/hand_landmark_lite.tflite",
    "modules/hand_landmark/hand_landmark_full.tflite",
    "modules/palm_detection/palm_detection_lite.tflite",
    "modules/palm_detection/palm_detection_full.tflite",
    "modules/selfie_segmentation/selfie_segmentation.tflite",
    "modules/selfie_segmentation/selfie_segmentation_landscape.tflite",
    "modules/pose_landmark/pose_landmark_full.tflite",
    "modules/pose_detection/pose_detection.tflite",
    "modules/face_detection/face_detection_full_range_sparse.tflite",
]


class ModelError(RuntimeError):
    pass


def _mp():
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import mediapipe as mp
    return mp


def check_bundled() -> None:
    mp = _mp()
    root = Path(mp.__file__).parent
    missing = [m for m in _REQUIRED if not (root / m).is_file()]
    if missing:
        raise ModelError(f"mediapipe {mp.__version__} lacks bundled models ({', '.join(missing)}); "
                         f"install mediapipe==0.10.21, which ships them")


def hands(static: bool, complexity: int, max_hands: int = 2, min_conf: float = 0.5):
    mp = _mp()
    return mp.solutions.hands.Hands(static_image_mode=static, max_num_hands=max_hands,
                                    model_complexity=complexity, min_detection_confidence=min_conf,
                                    min_tracking_confidence=0.5)


def selfie_segmentation(landscape: bool = False):
    mp = _mp()
    return mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=1 if landscape else 0)


def face_detection():
    # the full-range model: a shopper stands one to three metres from the mirror
    mp = _mp()
    return mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5)


def pose(static: bool, body_mask: bool = False):
    # complexity 1 is the only bundled pose landmark model (0 and 2 download);
    # its body mask comes from the same model, so it costs no download either
    mp = _mp()
    return mp.solutions.pose.Pose(static_image_mode=static, model_complexity=1,
                                  enable_segmentation=body_mask, min_detection_confidence=0.5)
