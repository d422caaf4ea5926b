"""What the shopper's own overlay shows, read from her session and her hand:
one function, so the kiosk and the checkout host draw the same card."""

from __future__ import annotations

from mirror.core.session import Session
from render.overlays import ShopperView


def shopper_view(s: Session, now: float, hand_input=None) -> ShopperView:
    """`hand_input`: a vision.interaction.HandInput, or None with no camera."""
    p = s.product
    size = p.sizes[s.size_index] if s.size_index < len(p.sizes) else ""
    view = ShopperView(color_bgr=s.color_bgr, color_name=s.color_name, ring_hue=s.ring_hue,
                       ring_active=now < s.circling_until, product=p.name,
                       product_detail=f"{s.color_name} · {p.price}" + (f" · size {size}" if size else ""))
    if s.consent is not None and not s.knocking:
        name = s.consent["first_name"]
        view.question = (f"{'Hi ' + name + '! ' if name else ''}Show your profile to our staff?",
                         "Thumbs-up or Yes to share it · anything else keeps it private")
    hi = hand_input
    if hi is not None and hi.cursor is not None:
        view.cursor, view.cursor_engaged = hi.cursor, hi.engaged
        # the arc fills for a button's dwell, or for a gesture being held toward firing
        view.cursor_progress = hi.cursor_progress or hi.hold_progress
    # a button lights up only under a hand that can press it (not a thumbs-up)
    aimed = hi.target if hi is not None and hi.cursor is not None else None
    view.controls = [(c.label, c.rect, c.id == aimed, view.cursor_progress if c.id == aimed else 0.0)
                     for c in s.controls()]
    return view
