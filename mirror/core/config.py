"""One validated configuration schema for the kiosk, as pydantic models.

Each `[section]` of the TOML file is a frozen, strict model whose fields carry
their default, bounds and description; `config/mirror.toml` is generated from
them (`documented_toml()`) and a test keeps the two identical. Loading collects
*every* problem, each naming `section.key`, the given value and the expected
form, so `mirror check-config` can list them all at once. NaN and infinity
are refused everywhere.

The file carries a top-level `version` (CURRENT_VERSION). A file without one
is version 1 (every file written before versions existed); an older file is
brought up to date by the ordered `MIGRATIONS` before validation, logging what
moved; a newer one is refused, since its keys may mean something else.

Environment overrides: `MIRROR_<SECTION>_<KEY>=value`, e.g.
`MIRROR_CAMERA_SOURCE=video`, read by pydantic-settings; a value is parsed as
the key's type ("7" gives 7 for an integer key) and otherwise refused.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import socket
import stat
import tomllib
import typing
import urllib.parse
from pathlib import Path
from typing import Any, Literal

import annotated_types
from pydantic import (BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, ValidationInfo,
                      create_model, model_validator)
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict, SettingsError

from mirror.core.actions import Action

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = PROJECT_ROOT / "config"
ASSETS_DIR = Path(__file__).resolve().parents[1] / "assets"
DEMO_CLIP = ASSETS_DIR / "demo_clip.mp4"

GESTURES = ("open_palm", "fist", "pointing_up", "thumbs_up", "thumbs_down", "victory", "pinch")
MOTIONS = ("circle", "swipe_left", "swipe_right", "dwell")


class ConfigError(Exception):
    """Raised with the full list of problems found in a config."""

    def __init__(self, problems: list[str], source: str = "config"):
        self.problems = problems
        self.source = source
        super().__init__(f"{source}: " + "; ".join(problems))


_RULES = "config_rules"


def _check(problems: list[str]) -> None:
    """Report every broken cross-field rule of a model as one error; `_problem` splits it again."""
    if problems:
        raise PydanticCustomError(_RULES, "{text}", {"text": "; ".join(problems), "problems": problems})


def _tls_problems(model: BaseModel, section: str, info: ValidationInfo) -> list[str]:
    """A listener's tls_cert and tls_key: both or neither, and each an existing file."""
    problems = []
    if bool(model.tls_cert) != bool(model.tls_key):
        problems.append(f"{section}.tls_key: set both {section}.tls_cert and {section}.tls_key, or neither")
    for key in ("tls_cert", "tls_key"):
        path = getattr(model, key)
        if path and not (_context_dir(info) / Path(path).expanduser()).is_file():
            problems.append(f"{section}.{key}: file {path!r} not found, expected a PEM file")
    return problems


def _is_wildcard(host: str) -> bool:
    """A bind address that means every address (0.0.0.0, ::, an empty host and their
    other spellings): no one name or address to put in a link or an Origin."""
    h = host.strip().strip("[]")
    if not h:
        return True
    try:
        return ipaddress.ip_address(h).is_unspecified
    except ValueError:
        return False


SECRET_BYTES = 32              # a join-link signing secret (call/tokens.py load_secret makes and reads it)


def _secret_file_problem(path: str, info: ValidationInfo) -> str | None:
    """What is wrong with call.secret_file whoever reads the config, or None. Said here
    so that `check-config` finds it, not a crash at start; whether the kiosk's user may
    read or create it is `load_secret`'s to say (staff in its group load this config too,
    for `mirror status`, and may not read the key)."""
    f = _context_dir(info) / Path(path).expanduser()
    try:
        if f.is_dir():
            return f"call.secret_file: {path!r} is a folder; name a file in it, such as join.key"
        if f.exists() and not f.is_file():
            return f"call.secret_file: {path!r} is not a regular file"
        if f.is_file() and (size := f.stat().st_size) < SECRET_BYTES:
            return (f"call.secret_file: {path!r} holds {size} bytes, a join-link secret needs "
                    f"{SECRET_BYTES}; delete it and the kiosk makes a new one")
        blocker = next((d for d in f.parents if d.exists()), None)
        if blocker is not None and not blocker.is_dir():
            return f"call.secret_file: {path!r} cannot be made: {blocker} is a file, not a folder"
    except OSError:
        return None            # not ours to see: the kiosk's user may (load_secret says if not)
    return None


def _not_above(model: BaseModel, section: str, low: str, high: str) -> list[str]:
    """A first retry delay must not exceed the longest one."""
    if getattr(model, low) > getattr(model, high):
        return [f"{section}.{low}: larger than {section}.{high}, expected it to be smaller"]
    return []


def _context_dir(info: ValidationInfo) -> Path:
    return Path((info.context or {}).get("base_dir", "."))


class _Section(BaseModel):
    # strict: a TOML "30" is not the integer 30, 1 is not true. Env strings are
    # converted by pydantic-settings before they get here.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)


class CameraConfig(_Section):
    source: Literal["webcam", "video", "images", "realsense", "recorded_depth"] = Field(
        "webcam", description="where frames come from")
    device: int = Field(0, ge=0, le=63, description="V4L2 camera index (/dev/videoN) for source = webcam")
    path: str = Field("", description="video file, image folder or recorded colour+depth folder for the file sources")
    width: int = Field(1280, ge=160, le=3840, description="requested capture width in pixels")
    height: int = Field(720, ge=120, le=2160, description="requested capture height in pixels")
    fps: int = Field(30, ge=1, le=120, description="requested capture rate (file sources are paced to it)")
    loop: bool = Field(True, description="restart a video or folder at its end")
    stall_timeout_s: float = Field(2.0, ge=0.2, le=60.0, description="no frame for this long counts as a lost camera")
    reconnect_initial_s: float = Field(0.5, ge=0.05, le=60.0,
                                       description="first reopen delay after a loss; doubles each try")
    reconnect_max_s: float = Field(1.0, ge=0.1, le=600.0, description="longest delay between reopen attempts "
                                   "(a camera that comes back is seen within about this long)")

    @model_validator(mode="after")
    def _rules(self) -> CameraConfig:
        problems = []
        if self.source in ("video", "images", "recorded_depth") and not self.path:
            problems.append(f"camera.path: empty, expected a file or folder path when camera.source = {self.source!r}")
        problems += _not_above(self, "camera", "reconnect_initial_s", "reconnect_max_s")
        if self.stall_timeout_s < 2.0 / self.fps:
            # a frame every 1/fps s: under two of those, the camera is "lost" between frames, for ever
            problems.append(f"camera.stall_timeout_s: {self.stall_timeout_s:g} s is under two frames at "
                            f"camera.fps = {self.fps} ({2.0 / self.fps:g} s); raise it or the frame rate")
        _check(problems)
        return self


class DepthConfig(_Section):
    enabled: bool = Field(True, description="use depth when the source provides it")
    cut_beyond_m: float = Field(0.6, ge=0.05, le=5.0,
                                description="drop mask pixels this far behind the person's median depth")
    presence_max_m: float = Field(2.5, ge=0.3, le=8.0, description="someone nearer than this counts as present")
    presence_min_fraction: float = Field(0.08, ge=0.001, le=1.0, description="share of the frame that must be that near")


class VisionConfig(_Section):
    hands_model: Literal["lite", "full"] = Field("lite", description="MediaPipe hand landmark model for the live loop")
    max_hands: int = Field(1, ge=1, le=4, description="hands tracked at once in the live loop; while fewer are up "
                           "than this, MediaPipe searches every frame for another (about 9 ms a frame here)")
    hands_width: int = Field(640, ge=160, le=3840, description="frames are scaled for hand tracking to the pixel count of a 16:9 frame this wide "
                                 "(1280x720 and 720x1280 both become 640x360 worth of pixels)")
    min_hand_confidence: float = Field(0.5, ge=0.05, le=0.99, description="minimum hand detection confidence")
    hand_search_every: int = Field(2, ge=1, le=10, description="while no hand is up, look for one on every n-th frame "
                                   "only (the palm search is the costliest frame); a tracked hand is followed every frame")
    garment_refresh_s: float = Field(1.0, ge=0.1, le=60.0,
                                     description="how often the slow garment model (pose + colour) is rebuilt")
    mask_smoothing: float = Field(0.5, ge=0.0, le=0.95,
                                  description="temporal smoothing of the garment matte (0 = none, 0.9 = heavy)")
    feather_px: int = Field(5, ge=0, le=40, description="edge feather radius of the garment matte at 720p")


class GesturesConfig(_Section):
    hold_frames: int = Field(4, ge=1, le=60, description="frames a gesture must hold before it fires")
    cooldown_s: float = Field(1.0, ge=0.0, le=10.0, description="quiet time after a gesture fires")
    min_score: float = Field(0.6, ge=0.0, le=1.0, description="minimum classifier score to count a gesture")
    circle_min_radius: float = Field(0.04, ge=0.005, le=0.5,
                                     description="smallest circle radius, as a fraction of frame width")
    degrees_per_turn: float = Field(360.0, ge=10.0, le=1080.0,
                                    description="hue degrees moved by one full circle of the finger")
    swipe_min_distance: float = Field(0.25, ge=0.05, le=1.0,
                                      description="horizontal travel for a swipe, as a fraction of frame width")
    swipe_max_s: float = Field(0.6, ge=0.1, le=3.0, description="a swipe must complete within this time")
    dwell_s: float = Field(1.2, ge=0.2, le=10.0, description="hold a hand still over a control this long to press it")
    hold_s: float = Field(0.5, ge=0.0, le=5.0,
                          description="a gesture must also be held this long, in seconds, before it fires")
    engage: bool = Field(True, description="act only on a shopper facing the mirror with her hand raised into the "
                                           "interaction zone (gestures, circles; buttons need a raised hand)")
    zone_width: float = Field(2.0, ge=1.0, le=5.0,
                              description="interaction zone width, as a multiple of her shoulder width")
    zone_top: float = Field(1.0, ge=0.0, le=3.0,
                            description="interaction zone top, in shoulder widths above her nose")
    zone_bottom: float = Field(0.8, ge=0.2, le=1.5,
                               description="interaction zone bottom, as a fraction of shoulders-to-hips below "
                                           "her shoulders (1 = the hip line)")
    hue_mode: Literal["wheel", "catalog"] = Field(
        "wheel", description="circle turns the hue smoothly (wheel) or steps catalogue colours (catalog)")


class ActionsConfig(_Section):
    open_palm: Action = Field("help", description="action for an open palm")
    fist: Action = Field("cancel", description="action for a fist")
    pointing_up: Action = Field("select", description="action for an index finger up")
    thumbs_up: Action = Field("confirm", description="action for a thumbs-up")
    thumbs_down: Action = Field("cancel", description="action for a thumbs-down")
    victory: Action = Field("call_friend", description="action for a victory sign")
    pinch: Action = Field("call_staff", description="action for a pinch")
    swipe_left: Action = Field("prev_color", description="action for a swipe to the shopper's left")
    swipe_right: Action = Field("next_color", description="action for a swipe to the shopper's right")


class DisplayConfig(_Section):
    fullscreen: bool = Field(True, description="take the whole screen (kiosk); false opens a window")
    width: int = Field(1080, ge=90, le=4320, description="output width in pixels (portrait)")
    height: int = Field(1920, ge=160, le=7680, description="output height in pixels (portrait)")
    mirror: bool = Field(True, description="flip the camera image left-right, like a mirror")
    fps: int = Field(30, ge=5, le=120, description="render rate cap")
    show_fps: bool = Field(False, description="start with the FPS/debug overlay on")
    controls: bool = Field(True, description="show on-screen buttons (colour, help, call) pressed by holding a hand "
                                             "still on them")
    idle_hint_s: float = Field(6.0, ge=1.0, le=600.0,
                               description="show the help hint after someone is present but idle this long")

    @model_validator(mode="after")
    def _rules(self) -> DisplayConfig:
        if self.width > self.height:
            _check(["display.width: wider than display.height, expected a portrait size"])
        return self


class CatalogConfig(_Section):
    path: str = Field("", description="catalogue file (.csv, or the older .toml); empty = the catalogue in the "
                                      "mirror's database ('mirror catalog import'), seeded from config/catalog.csv "
                                      "on first start")
    product: str = Field("", description="SKU shown at start; empty = the first product")


class LoggingConfig(_Section):
    level: Literal["debug", "info", "warning", "error"] = Field("info", description="log level")
    journal: bool = Field(True, description="also log to the systemd journal when it is reachable")


class ControlConfig(_Section):
    socket: str = Field("", description="Unix socket for 'mirror call link', 'mirror status' and store tools; "
                                        "empty = $RUNTIME_DIRECTORY/control.sock, else "
                                        "$XDG_RUNTIME_DIR/smart-mirror/control.sock, else "
                                        "/tmp/smart-mirror-UID/control.sock")
    group: str = Field("smart-mirror", description="group allowed to use the control socket (mode 0660); it must "
                                                   "exist, else only the kiosk's user can use it")


class PrivacyConfig(_Section):
    snapshot_camera: bool = Field(False, description="snapshots over the control socket include the camera picture "
                                                     "while someone is at the mirror; for installation and support "
                                                     "only; by default the camera layer is blanked then")


def _origin_problems(section: str, allowed: str) -> list[str]:
    """`allowed_origins` must list origins (scheme, host, port): not `*`, `null` or a URL with a path."""
    origins = [o.strip() for o in allowed.split(",") if o.strip()]
    bad = [o for o in origins if not o.startswith(("http://", "https://")) or "/" in o.split("://", 1)[1].rstrip("/")]
    return [f"{section}.allowed_origins: got {o!r}, expected an origin like http://host:port (no path)" for o in bad]


class CallConfig(_Section):
    enabled: bool = Field(True, description="serve the friend-call web server (join page and signalling)")
    host: str = Field("127.0.0.1", description="address the call's web server listens on (the store-network "
                                               "address for real use)")
    port: int = Field(8443, ge=1, le=65535, description="port of the call's web server")
    public_url: str = Field("", description="base of join links as friends reach it, e.g. "
                                            "https://mirror3.store.example:8443; empty = built from host and port")
    allowed_origins: str = Field("", description="extra Origins allowed to open /ws/join, comma-separated; "
                                                 "the public_url's origin is always allowed")
    ice_interfaces: str = Field("", description="network interfaces or addresses ICE may offer candidates on, "
                                                "comma-separated (e.g. eth0 or 192.168.1.20); empty = the address "
                                                "call.host resolves to, or every non-loopback address when call.host "
                                                "is 0.0.0.0/::")
    tls_cert: str = Field("", description="PEM certificate for https (browsers allow the camera only on https or "
                                          "localhost)")
    tls_key: str = Field("", description="PEM private key for tls_cert")
    secret_file: str = Field("", description="file holding the join-link signing secret; empty = a fresh random "
                                             "secret per start")
    link_ttl_s: float = Field(600.0, ge=10.0, le=86400.0, description="a join link expires this long after it is made")
    max_friends: int = Field(1, ge=1, le=4, description="friends in a call (or waiting to be let in) at once")
    join_attempts_per_minute: int = Field(10, ge=1, le=1000,
                                          description="join attempts allowed per client address per minute")
    join_timeout_s: float = Field(10.0, ge=1.0, le=120.0,
                                  description="a websocket that sends no join message in this time is closed")
    view: Literal["mirror", "clean"] = Field(
        "mirror", description="what the friend sees: the mirror with its overlays, or the clean recoloured view")
    video_width: int = Field(1280, ge=160, le=3840, description="outbound video width in pixels")
    video_height: int = Field(720, ge=120, le=2160, description="outbound video height in pixels")
    video_fps: int = Field(30, ge=5, le=60, description="outbound video frame rate")
    max_bitrate_kbps: int = Field(2500, ge=300, le=20000, description="highest outbound video bitrate")
    codecs: str = Field("VP8,H264", description="video codecs in order of preference, comma-separated (VP8, H264)")
    audio_output: str = Field("auto", description="ALSA device that plays the friend's voice; auto = 'default' when "
                                                  "a sound card exists, none = do not play")
    tile_width: float = Field(0.32, ge=0.1, le=0.6,
                              description="width of the friend's video tile, as a fraction of the screen width")
    timecode: bool = Field(False, description="stamp a time code into outbound frames (for measuring glass-to-glass "
                                              "latency)")

    @model_validator(mode="after")
    def _rules(self, info: ValidationInfo) -> CallConfig:
        problems = _tls_problems(self, "call", info)
        if self.public_url and not self.public_url.startswith(("http://", "https://")):
            problems.append(f"call.public_url: got {self.public_url!r}, expected an http:// or https:// URL")
        if self.enabled and not self.tls_cert and not _is_loopback(self.host):
            problems.append(f"call.tls_cert: empty while call.host is {self.host!r}; browsers only allow the "
                            "camera over https off this machine, so set call.tls_cert and call.tls_key")
        if self.enabled and not self.public_url and _is_wildcard(self.host):
            problems.append(f"call.public_url: empty while call.host is {self.host!r}; a join link needs the "
                            "address friends' browsers reach the mirror at, e.g. https://mirror3.store.lan:8443")
        if self.enabled and self.secret_file and (why := _secret_file_problem(self.secret_file, info)):
            problems.append(why)
        problems += _origin_problems("call", self.allowed_origins)
        for codec in self.codecs.split(","):
            if codec.strip().upper() not in ("VP8", "H264"):
                problems.append(f"call.codecs: got {codec.strip()!r}, expected VP8 and/or H264, comma-separated")
        for item in (x.strip() for x in self.ice_interfaces.split(",")):
            if item and not _ip_or_interface_name(item):
                problems.append(f"call.ice_interfaces: got {item!r}, expected interface names (eth0) or IP addresses "
                                "(192.168.1.20), comma-separated")
        _check(problems)
        return self


class NfcConfig(_Section):
    enabled: bool = Field(True, description="watch PC/SC readers for taps (a missing reader or pcscd is shown, "
                                            "not fatal)")
    reader: str = Field("", description="use only readers whose name contains this text; empty = every reader")
    poll_s: float = Field(0.5, ge=0.05, le=5.0, description="longest wait in one SCardGetStatusChange call "
                                                            "(stopping and hot-plug checks)")
    retry_initial_s: float = Field(0.2, ge=0.05, le=30.0, description="first wait before reconnecting to a stopped "
                                                                      "pcscd; doubles each try")
    retry_max_s: float = Field(5.0, ge=0.1, le=300.0, description="longest wait between pcscd reconnect attempts")
    member_record: str = Field("urn:nfc:ext:store.example:member", description="NDEF external record type that "
                               "carries the loyalty member id (id=...&name=...)")

    @model_validator(mode="after")
    def _rules(self) -> NfcConfig:
        problems = _not_above(self, "nfc", "retry_initial_s", "retry_max_s")
        ext = "urn:nfc:ext:"
        if not self.member_record.startswith(ext) or ":" not in self.member_record[len(ext):]:
            problems.append(f"nfc.member_record: got {self.member_record!r}, expected an external type like "
                            "urn:nfc:ext:store.example:member")
        _check(problems)
        return self


BEARER_TOKEN_RE = re.compile(r"[\x21-\x7e]+")   # what an HTTP header carries: visible ASCII, no space
                                                 # (wider than RFC 6750's b64token: "12|AbC" tokens work)


def _store_url_problem(url: str) -> str | None:
    """Why `url` cannot be the store checkout's endpoint, or None. Checked here, at
    load, because the outbox only meets the URL at its first delivery."""
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        return "which has spaces or control characters"
    try:
        u = urllib.parse.urlsplit(url)
    except ValueError as e:                 # "http://[::1/o": an unclosed IPv6 bracket
        return f"which is not a URL ({e})"
    if u.scheme not in ("http", "https"):
        return "expected an http:// or https:// URL"
    if not u.hostname:
        return "which names no host; for example https://checkout.store.lan/orders"
    try:
        port = u.port
    except ValueError:                      # out of range, or not a number
        port = 0
    if port == 0:
        return "whose port is not a number from 1 to 65535"
    return None


class CheckoutConfig(_Section):
    enabled: bool = Field(True, description="tap-to-checkout: turn a tap into an order")
    store_url: str = Field("", description="the store checkout's order endpoint (http/https); empty = pay at the "
                                           "till with a code")
    store_token: str = Field("", description="bearer token sent to the store checkout; empty = none")
    db_path: str = Field("", description="order journal (SQLite); empty = $STATE_DIRECTORY or "
                                         "~/.local/state/mirror/orders.db")
    store_timeout_s: float = Field(5.0, ge=0.2, le=120.0,
                                   description="wait this long for the store's reply before retrying")
    retry_initial_s: float = Field(1.0, ge=0.01, le=3600.0, description="first retry delay after a failed delivery; "
                                                                        "doubles each try, with jitter")
    retry_max_s: float = Field(300.0, ge=0.05, le=86400.0,
                               description="longest delay between delivery retries (retries never stop)")
    confirm_s: float = Field(20.0, ge=2.0, le=600.0, description="how long the confirmation stays on screen and the "
                                                                 "checkout stays open")
    dedupe_window_s: float = Field(600.0, ge=0.0, le=86400.0, description="the same card with the same cart within "
                                   "this time is the same order (covers a restart between the write and the "
                                   "confirmation)")
    reservation_hold_h: float = Field(24.0, ge=0.1, le=720.0, description="how long an item put aside in her size "
                                                                          "is held")
    keep_days: int = Field(90, ge=7, le=3650, description="delivered orders, finished reservations and audit "
                                                         "entries older than this are deleted")

    @model_validator(mode="after")
    def _rules(self) -> CheckoutConfig:
        problems = _not_above(self, "checkout", "retry_initial_s", "retry_max_s")
        if self.store_url and (why := _store_url_problem(self.store_url)):
            problems.append(f"checkout.store_url: got {self.store_url!r}, {why} (or leave it empty to pay at the "
                            "till)")
        if self.store_token and not BEARER_TOKEN_RE.fullmatch(self.store_token):
            # said without the value: it is a secret
            problems.append("checkout.store_token: has characters a bearer token cannot carry (space, line break, "
                            "quote, non-ASCII); copy the token exactly as the store's checkout issued it")
        _check(problems)
        return self


class SessionConfig(_Section):
    camera_lost_grace_s: float = Field(10.0, ge=1.0, le=600.0, description="a camera lost for longer than this ends "
                                       "the shopper's session (her cart, her friend call) as if she had left")


class StaffConfig(_Section):
    enabled: bool = Field(True, description="serve the store-staff listener and its console at /staff")
    host: str = Field("127.0.0.1", description="address the staff listener binds; the store-LAN address for real use")
    port: int = Field(8080, ge=1, le=65535, description="port of the staff listener")
    session_ttl_min: int = Field(480, ge=5, le=1440, description="a staff console login (its cookie) expires this "
                                                                 "many minutes after the PIN was entered")
    allowed_origins: str = Field("", description="extra Origins allowed to log in and act on the staff console, "
                                                 "comma-separated (e.g. http://mirror3.store.lan:8080); the "
                                                 "listener's own http(s)://host:port is always allowed; needed "
                                                 "when staff.host is 0.0.0.0")
    tls_cert: str = Field("", description="PEM certificate for https on the staff listener (the cookie is then "
                                          "Secure); needed when staff.host is not a loopback address, so that "
                                          "PINs and cookies never cross the store's network in clear")
    tls_key: str = Field("", description="PEM private key for staff.tls_cert")
    escalate_s: float = Field(90.0, ge=10.0, le=3600.0, description="a shopper's request nobody answers alerts "
                                                                   "every console again after this many seconds")
    webstore_token: str = Field("", description="bearer token the web store sends to POST /api/reservations and "
                                                "/api/wishlist on the staff listener; empty = those endpoints are "
                                                "off (404); at least 24 characters (MIRROR_STAFF_WEBSTORE_TOKEN)")

    @model_validator(mode="after")
    def _rules(self, info: ValidationInfo) -> StaffConfig:
        problems = _tls_problems(self, "staff", info)
        if self.enabled and not self.tls_cert and not _is_loopback(self.host):
            problems.append(f"staff.tls_cert: empty while staff.host is {self.host!r}; staff PINs and cookies would "
                            "cross the store's network in clear, so set staff.tls_cert and staff.tls_key (or keep "
                            "staff.host on 127.0.0.1 behind a TLS proxy)")
        if self.enabled and _is_wildcard(self.host) and not self.allowed_origins.strip():
            problems.append(f"staff.allowed_origins: empty while staff.host is {self.host!r}; the console's "
                            "login only accepts pages from the origins it knows, so name the address the "
                            "tablets open, e.g. https://mirror3.store.lan:8080")
        _check(problems)
        _check(_origin_problems("staff", self.allowed_origins))
        t = self.webstore_token
        _check([] if not t or (len(t) >= 24 and BEARER_TOKEN_RE.fullmatch(t)) else
               ["staff.webstore_token: use at least 24 printable characters without spaces (e.g. the output of "
                "'openssl rand -hex 24'), or leave it empty to turn the web-store endpoints off"])
        return self


class Config(BaseModel):
    """The whole configuration; built by `load()`/`build()`, which also apply MIRROR_* overrides."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    camera: CameraConfig = Field(default_factory=CameraConfig)
    depth: DepthConfig = Field(default_factory=DepthConfig)
    vision: VisionConfig = Field(default_factory=VisionConfig)
    gestures: GesturesConfig = Field(default_factory=GesturesConfig)
    actions: ActionsConfig = Field(default_factory=ActionsConfig)
    display: DisplayConfig = Field(default_factory=DisplayConfig)
    catalog: CatalogConfig = Field(default_factory=CatalogConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    control: ControlConfig = Field(default_factory=ControlConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    call: CallConfig = Field(default_factory=CallConfig)
    nfc: NfcConfig = Field(default_factory=NfcConfig)
    checkout: CheckoutConfig = Field(default_factory=CheckoutConfig)
    session: SessionConfig = Field(default_factory=SessionConfig)
    staff: StaffConfig = Field(default_factory=StaffConfig)

    # Where relative paths in the file are resolved: the file's folder. Private,
    # so it is neither a TOML key nor in the generated file.
    _base_dir: str = PrivateAttr(".")

    def model_post_init(self, context: Any, /) -> None:
        self._base_dir = str((context or {}).get("base_dir", "."))

    @model_validator(mode="after")
    def _listeners(self) -> Config:
        call, staff = self.call, self.staff
        if call.enabled and staff.enabled and call.port == staff.port and _overlap(call.host, staff.host):
            _check([f"staff.port: got {staff.port}, the same as call.port on an overlapping address "
                    f"(staff.host {staff.host!r}, call.host {call.host!r}), expected a different port"])
        return self

    @property
    def base_dir(self) -> str:
        return self._base_dir

    def resolve(self, path: str) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else Path(self.base_dir) / p

    def orders_path(self) -> Path:
        """checkout.db_path, else $STATE_DIRECTORY (systemd StateDirectory=), else ~/.local/state/mirror."""
        if self.checkout.db_path:
            return self.resolve(self.checkout.db_path)
        state = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
        if state:
            return Path(state) / "orders.db"
        base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        return Path(base) / "mirror" / "orders.db"

    def catalog_path(self) -> Path:
        return self.resolve(self.catalog.path) if self.catalog.path else CONFIG_DIR / "catalog.toml"

    def replace(self, section: str, **changes) -> Config:
        """A copy with some keys of one section changed, validated again (ConfigError if that breaks a rule)."""
        data = self.model_dump()
        data[section] = {**data.get(section, {}), **changes}
        return _validate(data, base_dir=self.base_dir, source="config", env_keys={})


SECTIONS: dict[str, type[_Section]] = {name: f.annotation for name, f in Config.model_fields.items()}


class _EnvironmentBase(BaseSettings):
    # strict also makes pydantic-settings convert each env string to its key's
    # type ("7" to 7 for an integer key, "nan" to nan for a number); a string
    # that does not convert is left for validation to refuse.
    model_config = SettingsConfigDict(env_prefix="MIRROR_", env_nested_delimiter="_", env_nested_max_split=1,
                                      strict=True)


# The settings root pydantic-settings reads MIRROR_<SECTION>_<KEY> against: the
# sections of Config. Only its env source is used, never an instance: a
# BaseSettings validates through its own __init__, which would drop the
# validation context (base_dir) and read os.environ behind the env= mapping.
_Environment = create_model("_Environment", __base__=_EnvironmentBase,
                            **{name: (f.annotation, f) for name, f in Config.model_fields.items()})


def _loopback_name(host: str) -> bool:
    # Browsers treat only these names (and loopback IP literals) as this machine,
    # so only they make http:// a secure context for the camera; a public name
    # that DNS maps to 127.0.0.1 (127.0.0.1.nip.io) does not.
    host = host.lower().rstrip(".")
    return host == "localhost" or host.endswith(".localhost")


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    ip = ipaddress.ip_address(text.strip("[]").split("%")[0])
    return ip.ipv4_mapped or ip if isinstance(ip, ipaddress.IPv6Address) else ip


def _addresses(host: str) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address] | None:
    """What `host` resolves to; None when it cannot be resolved."""
    try:
        return {_ip(host)}
    except ValueError:
        pass
    try:
        return {_ip(str(info[4][0])) for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)} or None
    except (OSError, UnicodeError, ValueError):
        return None


def _ip_or_interface_name(text: str) -> bool:
    """An IP address, or something that can be a network interface's name
    (whether it exists is the kiosk's business at call time)."""
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return len(text) <= 15 and not any(c in text for c in "/: \t") and text.isprintable()


def _is_loopback(host: str) -> bool:
    """True when a listener on `host` is reachable only from this machine, under a name browsers trust."""
    try:
        _ip(host)
    except ValueError:
        if not _loopback_name(host):
            return False
    addrs = _addresses(host)
    return bool(addrs) and all(a.is_loopback for a in addrs)


def _overlap(a: str, b: str) -> bool:
    """Whether listeners on hosts a and b would compete for one port ("" and 0.0.0.0 take every address)."""
    if a.strip().lower() == b.strip().lower() or not a or not b:
        return True
    ra, rb = _addresses(a) or set(), _addresses(b) or set()
    return any(x.is_unspecified for x in ra | rb) or bool(ra & rb)


# ---- loading and messages --------------------------------------------------

_EXPECTED = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
_MOVED = {"call.control_socket": "control.socket"}


def _field(section: str, key: str):
    cls = SECTIONS.get(section)
    return cls.model_fields.get(key) if cls else None


def _bounds(field) -> tuple[object, object] | None:
    lo = next((m.ge for m in field.metadata if isinstance(m, annotated_types.Ge)), None)
    hi = next((m.le for m in field.metadata if isinstance(m, annotated_types.Le)), None)
    return None if lo is None and hi is None else (lo, hi)


def _choices(field) -> tuple[str, ...] | None:
    return typing.get_args(field.annotation) if typing.get_origin(field.annotation) is Literal else None


def _problem(err: dict) -> list[str]:
    """One pydantic error as our one-line problems."""
    kind, loc = err["type"], err["loc"]
    if kind == _RULES:
        return list(err["ctx"]["problems"])
    if len(loc) == 1:
        name = loc[0]
        if kind == "extra_forbidden":
            return [f"[{name}]: unknown section, expected one of {', '.join(SECTIONS)}"]
        return [f"{name}: expected a [{name}] table"]
    if len(loc) != 2:
        return [f"{'.'.join(map(str, loc))}: {err['msg']}"]
    section, key = map(str, loc)
    name, field = f"{section}.{key}", _field(section, key)
    if kind == "extra_forbidden" or field is None:
        moved = f" (moved to {_MOVED[name]})" if name in _MOVED else ""
        return [f"{name}: unknown key{moved}, expected one of {', '.join(SECTIONS[section].model_fields)}"]
    got = f"{name}: got {err['input']!r}"
    if (choices := _choices(field)) is not None:
        return [f"{got}, expected one of {', '.join(choices)}"]
    bounds = _bounds(field)
    if kind in ("greater_than_equal", "less_than_equal") and bounds:
        return [f"{got}, expected a value from {bounds[0]} to {bounds[1]}"]
    if kind == "finite_number":
        return [f"{got}, expected a finite number" + (f" from {bounds[0]} to {bounds[1]}" if bounds else "")]
    expected = _EXPECTED.get(field.annotation)
    return [f"{got}, expected {expected}" if expected else f"{got}: {err['msg']}"]


def _validate(data: dict, *, base_dir: str, source: str, env_keys: dict[str, str]) -> Config:
    try:
        return Config.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as e:
        problems = []
        for err in e.errors():
            for p in _problem(err):
                # A key set from the environment says so: the file may look right.
                var = env_keys.get(p.split(":", 1)[0])
                problems.append(f"{p} (from {var})" if var else p)
        raise ConfigError(problems, source) from None


# MIRROR_* variables that are not config overrides: the test harness's own
NOT_OVERRIDES = frozenset({"MIRROR_PCSCD_PRIVATE", "MIRROR_TEST_CRASHPOINT"})


def _warn_unused_env(env: typing.Mapping[str, str], source: str) -> None:
    """A MIRROR_* variable that names no section would be ignored without a word
    (pydantic-settings reads only the ones it knows): say so."""
    for name in sorted(env):
        head = name.upper()
        if not head.startswith("MIRROR_") or head in NOT_OVERRIDES:
            continue
        section = head[len("MIRROR_"):].split("_", 1)[0].lower()
        if section not in SECTIONS:
            log.warning("%s: environment variable %s names no config section and is ignored; overrides are "
                        "MIRROR_<SECTION>_<KEY> with a section of %s", source, name, ", ".join(SECTIONS))


def _env_overrides(env: typing.Mapping[str, str] | None) -> dict[str, object]:
    """MIRROR_<SECTION>_<KEY> variables as {section: {key: value}}, by pydantic-settings' env source."""
    src = EnvSettingsSource(_Environment)
    if env is not None:
        src.env_vars = {k.lower(): v for k, v in env.items()}     # the source is case-insensitive
    return src()


# ---- the file's format version ------------------------------------------------

CURRENT_VERSION = 2


def _v1_to_v2(data: dict) -> tuple[list[str], list[str]]:
    """Version 1 kept the control socket as [call] control_socket; version 2 has [control] socket."""
    call, control = data.get("call"), data.get("control", {})
    if not isinstance(call, dict) or "control_socket" not in call:
        return [], []
    if not isinstance(control, dict):
        return [], []                          # validation reports the non-table [control]
    value = call["control_socket"]
    data["call"] = {k: v for k, v in call.items() if k != "control_socket"}
    if "socket" in control and control["socket"] != value:
        return [], [f"call.control_socket: moved to control.socket in version {CURRENT_VERSION}, and the file "
                    f"sets both (control.socket = {control['socket']!r}, call.control_socket = {value!r}); "
                    "keep only control.socket"]
    data["control"] = {**control, "socket": value}
    return ["moved call.control_socket to control.socket"], []


# (from version, step to the next one), in order. A step gets a copy of the document and changes it
# in place; it returns what it did (logged) and what it could not do (problems, reported with the rest).
MIGRATIONS: tuple[tuple[int, typing.Callable[[dict], tuple[list[str], list[str]]]], ...] = ((1, _v1_to_v2),)


def _migrate(data: dict, source: str) -> tuple[dict, list[str]]:
    """The document without `version`, brought to CURRENT_VERSION; ConfigError for a version it cannot take."""
    data = dict(data)
    version = data.pop("version", 1)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ConfigError([f"version: got {version!r}, expected an integer from 1 to {CURRENT_VERSION} (the config "
                           f"format version; {CURRENT_VERSION} is current)"], source)
    if version > CURRENT_VERSION:
        raise ConfigError([f"version: got {version}, this mirror understands up to {CURRENT_VERSION}; update the "
                           "mirror or use an older config"], source)
    if version < 1:
        raise ConfigError([f"version: got {version}, expected an integer from 1 to {CURRENT_VERSION}"], source)
    done, problems = [], []
    for start, step in MIGRATIONS:
        if start >= version:
            did, failed = step(data)
            done += did
            problems += failed
    if done:
        log.warning("%s: config version %d migrated to %d: %s; write version = %d and the new keys into the file "
                    "(mirror check-config FILE checks it)", source, version, CURRENT_VERSION, "; ".join(done),
                    CURRENT_VERSION)
    return data, problems


def build(data: dict, *, base_dir: str = ".", source: str = "config",
          env: typing.Mapping[str, str] | None = None) -> Config:
    """Validate a parsed TOML document plus MIRROR_* overrides (from `env`, else os.environ) into a Config.

    The document's `version` is handled first: migrated when older, refused when newer."""
    data, migration_problems = _migrate(data, source)
    _warn_unused_env(os.environ if env is None else env, source)
    try:
        overrides = _env_overrides(env)
    except SettingsError as e:
        m = re.search(r'field "([a-z_]+)"', str(e))
        if m and m.group(1) in SECTIONS:
            # MIRROR_CAMERA=...: pydantic-settings reads a whole section from it, as JSON
            var = f"MIRROR_{m.group(1).upper()}"
            raise ConfigError([f"environment: {var} names the whole [{m.group(1)}] section; set one key, such "
                               f"as {var}_{next(iter(SECTIONS[m.group(1)].model_fields)).upper()}=..., or unset "
                               f"{var}"], source) from None
        raise ConfigError([f"environment: {e} ({e.__cause__})"], source) from None
    merged = dict(data)
    env_keys = {}
    for section, values in overrides.items():
        if not isinstance(values, dict):
            continue
        given = merged.get(section, {})
        if isinstance(given, dict):        # else the file's non-table is reported, not hidden
            merged[section] = {**given, **values}
            env_keys.update({f"{section}.{k}": f"MIRROR_{section}_{k}".upper() for k in values})
    try:
        cfg = _validate(merged, base_dir=base_dir, source=source, env_keys=env_keys)
    except ConfigError as e:
        raise ConfigError(migration_problems + e.problems, source) from None
    if migration_problems:
        raise ConfigError(migration_problems, source)
    return cfg


CONFIG_MAX_BYTES = 1 << 20


def load(path: str | os.PathLike | None, *, env: typing.Mapping[str, str] | None = None) -> Config:
    """Load and validate a TOML config file; None gives the embedded defaults."""
    if path is None:
        return build({}, env=env, source="defaults")
    p = Path(path)
    try:
        st = p.stat()
        if stat.S_ISREG(st.st_mode) and st.st_size > CONFIG_MAX_BYTES:
            raise ConfigError([f"is {st.st_size} bytes; a config is a short TOML text file like "
                               f"config/mirror.toml (at most {CONFIG_MAX_BYTES // 1024} KiB)"], str(p))
        if not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode):
            # a pipe would wait for ever, a device never end
            raise ConfigError(["is not a regular file (a pipe or a device); pass the TOML file itself"], str(p))
        # utf-8-sig: a byte-order mark, as some Windows editors save, is no error
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError([f"file not found; create it or pass an existing file (see {CONFIG_DIR / 'mirror.toml'})"], str(p))
    except IsADirectoryError:
        raise ConfigError(["is a folder; pass the TOML file itself (such as mirror.toml in it)"], str(p))
    except UnicodeDecodeError:
        raise ConfigError(["is not UTF-8 text; a config is a TOML text file like config/mirror.toml"], str(p))
    except OSError as e:
        raise ConfigError([f"cannot read it ({e.strerror or e}); check its permissions"], str(p))
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([f"not valid TOML: {e}"], str(p))
    return build(data, base_dir=str(p.resolve().parent), source=str(p), env=env)


def documented_defaults() -> dict[str, object]:
    """The defaults as a TOML-shaped dict (used to check config/mirror.toml), with the current `version`."""
    return {"version": CURRENT_VERSION, **{name: cls().model_dump() for name, cls in SECTIONS.items()}}


def documented_toml() -> str:
    """The defaults as a commented TOML file (this is what config/mirror.toml holds)."""
    def fmt(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace('"', '\\"') + '"'
        return repr(v)
    lines = ["# Smart mirror configuration: every key with its default and meaning.",
             "# Check a file with: mirror check-config FILE",
             "# Any key can be overridden from the environment: MIRROR_<SECTION>_<KEY>=value",
             "# Relative paths are resolved against the folder of this file.",
             "",
             "# config format version: a file without one is version 1 and is migrated; a newer one is refused",
             f"version = {CURRENT_VERSION}"]
    for name, cls in SECTIONS.items():
        lines += ["", f"[{name}]"]
        for key, f in cls.model_fields.items():
            extra = []
            if choices := _choices(f):
                extra.append("one of: " + ", ".join(choices))
            if bounds := _bounds(f):
                extra.append(f"range {bounds[0]} to {bounds[1]}")
            lines.append(f"# {f.description}" + (f" ({'; '.join(extra)})" if extra else ""))
            lines.append(f"{key} = {fmt(f.default)}")
    return "\n".join(lines) + "\n"
