"""Capture, hand tracking, gestures, garment segmentation and recolouring."""
