"""The pygame compositor: the mirrored view and its overlays."""
