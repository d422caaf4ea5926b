"""One validated configuration schema for the kiosk.

The schema is a set of frozen dataclasses. Every field carries its default, its
bounds and a one-line description; `config/mirror.toml` documents the same keys
and a test keeps the two in step. Loading collects *every* problem, each naming
the key, what is wrong and the expected form, so `mirror check-config` can list
them all at once.

Environment overrides: `MIRROR_<SECTION>_<KEY>=value`, e.g.
`MIRROR_CAMERA_SOURCE=video`. Values are parsed as TOML scalars when possible,
else taken as strings.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = PROJECT_ROOT / "config"
ASSETS_DIR = Path(__file__).resolve().parents[1] / "assets"
DEMO_CLIP = ASSETS_DIR / "demo_clip.mp4"


class ConfigError(Exception):
    """Raised with the full list of problems found in a config."""

    def __init__(self, problems: list[str], source: str = "config"):
        self.problems = problems
        self.source = source
        super().__init__(f"{source}: " + "; ".join(problems))


def opt(default, doc: str, *, min=None, max=None, choices=None):
    return field(default=default, metadata={"doc": doc, "min": min, "max": max, "choices": choices})


GESTURES = ("open_palm", "fist", "pointing_up", "thumbs_up", "thumbs_down", "victory", "pinch")
MOTIONS = ("circle", "swipe_left", "swipe_right", "dwell")
from mirror.core.actions import ACTIONS  # noqa: E402  (the one action list)


@dataclass(frozen=True)
class CameraConfig:
    source: str = opt("webcam", "where frames come from",
                      choices=("webcam", "video", "images", "realsense", "recorded_depth"))
    device: int = opt(0, "V4L2 camera index (/dev/videoN) for source = webcam", min=0, max=63)
    path: str = opt("", "video file, image folder or recorded colour+depth folder for the file sources")
    width: int = opt(1280, "requested capture width in pixels", min=160, max=3840)
    height: int = opt(720, "requested capture height in pixels", min=120, max=2160)
    fps: int = opt(30, "requested capture rate (file sources are paced to it)", min=1, max=120)
    loop: bool = opt(True, "restart a video or folder at its end")
    stall_timeout_s: float = opt(2.0, "no frame for this long counts as a lost camera", min=0.2, max=60.0)
    reconnect_initial_s: float = opt(0.5, "first reopen delay after a loss; doubles each try", min=0.05, max=60.0)
    reconnect_max_s: float = opt(10.0, "longest delay between reopen attempts", min=0.1, max=600.0)


@dataclass(frozen=True)
class DepthConfig:
    enabled: bool = opt(True, "use depth when the source provides it")
    cut_beyond_m: float = opt(0.6, "drop mask pixels this far behind the person's median depth", min=0.05, max=5.0)
    presence_max_m: float = opt(2.5, "someone nearer than this counts as present", min=0.3, max=8.0)
    presence_min_fraction: float = opt(0.08, "share of the frame that must be that near", min=0.001, max=1.0)


@dataclass(frozen=True)
class VisionConfig:
    hands_model: str = opt("lite", "MediaPipe hand landmark model for the live loop", choices=("lite", "full"))
    max_hands: int = opt(1, "hands tracked at once in the live loop; while fewer are up than this, "
                              "MediaPipe searches every frame for another (about 9 ms a frame here)", min=1, max=4)
    hands_width: int = opt(640, "frames are scaled to this width for hand tracking", min=160, max=3840)
    min_hand_confidence: float = opt(0.5, "minimum hand detection confidence", min=0.05, max=0.99)
    garment_refresh_s: float = opt(1.0, "how often the slow garment model (pose + colour) is rebuilt", min=0.1, max=60.0)
    mask_smoothing: float = opt(0.5, "temporal smoothing of the garment matte (0 = none, 0.9 = heavy)", min=0.0, max=0.95)
    feather_px: int = opt(5, "edge feather radius of the garment matte at 720p", min=0, max=40)


@dataclass(frozen=True)
class GesturesConfig:
    hold_frames: int = opt(4, "frames a gesture must hold before it fires", min=1, max=60)
    cooldown_s: float = opt(1.0, "quiet time after a gesture fires", min=0.0, max=10.0)
    min_score: float = opt(0.6, "minimum classifier score to count a gesture", min=0.0, max=1.0)
    circle_min_radius: float = opt(0.04, "smallest circle radius, as a fraction of frame width", min=0.005, max=0.5)
    degrees_per_turn: float = opt(360.0, "hue degrees moved by one full circle of the finger", min=10.0, max=1080.0)
    swipe_min_distance: float = opt(0.25, "horizontal travel for a swipe, as a fraction of frame width", min=0.05, max=1.0)
    swipe_max_s: float = opt(0.6, "a swipe must complete within this time", min=0.1, max=3.0)
    dwell_s: float = opt(1.2, "hold a hand still over a control this long to press it", min=0.2, max=10.0)
    hue_mode: str = opt("wheel", "circle turns the hue smoothly (wheel) or steps catalogue colours (catalog)",
                        choices=("wheel", "catalog"))


@dataclass(frozen=True)
class ActionsConfig:
    open_palm: str = opt("help", "action for an open palm", choices=ACTIONS)
    fist: str = opt("cancel", "action for a fist", choices=ACTIONS)
    pointing_up: str = opt("select", "action for an index finger up", choices=ACTIONS)
    thumbs_up: str = opt("confirm", "action for a thumbs-up", choices=ACTIONS)
    thumbs_down: str = opt("cancel", "action for a thumbs-down", choices=ACTIONS)
    victory: str = opt("call_friend", "action for a victory sign", choices=ACTIONS)
    pinch: str = opt("call_staff", "action for a pinch", choices=ACTIONS)
    swipe_left: str = opt("prev_color", "action for a swipe to the shopper's left", choices=ACTIONS)
    swipe_right: str = opt("next_color", "action for a swipe to the shopper's right", choices=ACTIONS)


@dataclass(frozen=True)
class DisplayConfig:
    fullscreen: bool = opt(True, "take the whole screen (kiosk); false opens a window")
    width: int = opt(1080, "output width in pixels (portrait)", min=90, max=4320)
    height: int = opt(1920, "output height in pixels (portrait)", min=160, max=7680)
    mirror: bool = opt(True, "flip the camera image left-right, like a mirror")
    fps: int = opt(30, "render rate cap", min=5, max=120)
    show_fps: bool = opt(False, "start with the FPS/debug overlay on")
    controls: bool = opt(True, "show on-screen buttons (colour, help, call) pressed by holding a hand still on them")
    idle_hint_s: float = opt(6.0, "show the help hint after someone is present but idle this long", min=1.0, max=600.0)


@dataclass(frozen=True)
class CatalogConfig:
    path: str = opt("", "catalogue TOML file; empty = the bundled example config/catalog.toml")
    product: str = opt("", "SKU shown at start; empty = the first product")


@dataclass(frozen=True)
class LoggingConfig:
    level: str = opt("info", "log level", choices=("debug", "info", "warning", "error"))
    journal: bool = opt(True, "also log to the systemd journal when it is reachable")


@dataclass(frozen=True)
class CallConfig:
    enabled: bool = opt(True, "serve the friend-call web server (join page and signalling)")
    host: str = opt("127.0.0.1", "address the call's web server listens on (the store-network address for real use)")
    port: int = opt(8443, "port of the call's web server", min=1, max=65535)
    public_url: str = opt("", "base of join links as friends reach it, e.g. https://mirror3.store.example:8443; "
                              "empty = built from host and port")
    allowed_origins: str = opt("", "extra Origins allowed to open /ws/join, comma-separated; "
                                   "the public_url's origin is always allowed")
    tls_cert: str = opt("", "PEM certificate for https (browsers allow the camera only on https or localhost)")
    tls_key: str = opt("", "PEM private key for tls_cert")
    secret_file: str = opt("", "file holding the join-link signing secret; empty = a fresh random secret per start")
    link_ttl_s: float = opt(600.0, "a join link expires this long after it is made", min=10.0, max=86400.0)
    max_friends: int = opt(1, "friends in a call (or waiting to be let in) at once", min=1, max=4)
    join_attempts_per_minute: int = opt(10, "join attempts allowed per client address per minute", min=1, max=1000)
    join_timeout_s: float = opt(10.0, "a websocket that sends no join message in this time is closed", min=1.0, max=120.0)
    view: str = opt("mirror", "what the friend sees: the mirror with its overlays, or the clean recoloured view",
                    choices=("mirror", "clean"))
    video_width: int = opt(1280, "outbound video width in pixels", min=160, max=3840)
    video_height: int = opt(720, "outbound video height in pixels", min=120, max=2160)
    video_fps: int = opt(30, "outbound video frame rate", min=5, max=60)
    max_bitrate_kbps: int = opt(2500, "highest outbound video bitrate", min=300, max=20000)
    codecs: str = opt("VP8,H264", "video codecs in order of preference, comma-separated (VP8, H264)")
    audio_output: str = opt("auto", "ALSA device that plays the friend's voice; auto = 'default' when a sound card "
                                    "exists, none = do not play")
    tile_width: float = opt(0.32, "width of the friend's video tile, as a fraction of the screen width",
                            min=0.1, max=0.6)
    control_socket: str = opt("", "Unix socket for 'mirror call link' and store tools; empty = "
                                  "$RUNTIME_DIRECTORY/control.sock, else $XDG_RUNTIME_DIR/smart-mirror/control.sock, "
                                  "else /tmp/smart-mirror-UID/control.sock")
    timecode: bool = opt(False, "stamp a time code into outbound frames (for measuring glass-to-glass latency)")


@dataclass(frozen=True)
class NfcConfig:
    enabled: bool = opt(True, "watch PC/SC readers for taps (a missing reader or pcscd is shown, not fatal)")
    reader: str = opt("", "use only readers whose name contains this text; empty = every reader")
    poll_s: float = opt(0.5, "longest wait in one SCardGetStatusChange call (stopping and hot-plug checks)",
                        min=0.05, max=5.0)
    retry_initial_s: float = opt(0.2, "first wait before reconnecting to a stopped pcscd; doubles each try",
                                 min=0.05, max=30.0)
    retry_max_s: float = opt(5.0, "longest wait between pcscd reconnect attempts", min=0.1, max=300.0)
    member_record: str = opt("urn:nfc:ext:store.example:member",
                             "NDEF external record type that carries the loyalty member id (id=...&name=...)")


@dataclass(frozen=True)
class CheckoutConfig:
    enabled: bool = opt(True, "tap-to-checkout: turn a tap into an order")
    store_url: str = opt("", "the store checkout's order endpoint (http/https); empty = pay at the till with a code")
    store_token: str = opt("", "bearer token sent to the store checkout; empty = none")
    db_path: str = opt("", "order journal (SQLite); empty = $STATE_DIRECTORY or ~/.local/state/mirror/orders.db")
    store_timeout_s: float = opt(5.0, "wait this long for the store's reply before retrying", min=0.2, max=120.0)
    retry_initial_s: float = opt(1.0, "first retry delay after a failed delivery; doubles each try, with jitter",
                                 min=0.01, max=3600.0)
    retry_max_s: float = opt(300.0, "longest delay between delivery retries (retries never stop)",
                             min=0.05, max=86400.0)
    confirm_s: float = opt(20.0, "how long the confirmation stays on screen and the checkout stays open",
                           min=2.0, max=600.0)
    dedupe_window_s: float = opt(600.0, "the same card with the same cart within this time is the same order "
                                        "(covers a restart between the write and the confirmation)",
                                 min=0.0, max=86400.0)
    reservation_hold_h: float = opt(24.0, "how long an item put aside in her size is held", min=0.1, max=720.0)


@dataclass(frozen=True)
class Config:
    camera: CameraConfig = field(default_factory=CameraConfig)
    depth: DepthConfig = field(default_factory=DepthConfig)
    vision: VisionConfig = field(default_factory=VisionConfig)
    gestures: GesturesConfig = field(default_factory=GesturesConfig)
    actions: ActionsConfig = field(default_factory=ActionsConfig)
    display: DisplayConfig = field(default_factory=DisplayConfig)
    catalog: CatalogConfig = field(default_factory=CatalogConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    call: CallConfig = field(default_factory=CallConfig)
    nfc: NfcConfig = field(default_factory=NfcConfig)
    checkout: CheckoutConfig = field(default_factory=CheckoutConfig)
    # Directory that relative paths in the file are resolved against.
    base_dir: str = field(default=".", metadata={"internal": True})

    def resolve(self, path: str) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else Path(self.base_dir) / p

    def orders_path(self) -> Path:
        from mirror.storage.orders import default_db_path
        return self.resolve(self.checkout.db_path) if self.checkout.db_path else default_db_path()

    def catalog_path(self) -> Path:
        return self.resolve(self.catalog.path) if self.catalog.path else CONFIG_DIR / "catalog.toml"

    def replace(self, section: str, **changes) -> "Config":
        return dataclasses.replace(self, **{section: dataclasses.replace(getattr(self, section), **changes)})


SECTIONS: dict[str, type] = {
    name: hint for name, hint in typing.get_type_hints(Config).items() if name != "base_dir"
}

_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _check_value(key: str, ftype: type, meta: dict, value) -> tuple[object, str | None]:
    """Return (coerced value, problem or None)."""
    expected = _TYPE_NAMES[ftype]
    if ftype is bool:
        if not isinstance(value, bool):
            return None, f"{key}: got {value!r}, expected {expected}"
    elif ftype is int:
        if isinstance(value, bool) or not isinstance(value, int):
            return None, f"{key}: got {value!r}, expected {expected}"
    elif ftype is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None, f"{key}: got {value!r}, expected {expected}"
        value = float(value)
    elif ftype is str:
        if not isinstance(value, str):
            return None, f"{key}: got {value!r}, expected {expected}"
    choices = meta.get("choices")
    if choices and value not in choices:
        return None, f"{key}: got {value!r}, expected one of {', '.join(choices)}"
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None and value < lo or hi is not None and value > hi:
        return None, f"{key}: got {value!r}, expected a value from {lo} to {hi}"
    return value, None


def _env_overrides(env: typing.Mapping[str, str]) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for name, raw in env.items():
        if not name.startswith("MIRROR_"):
            continue
        rest = name[len("MIRROR_"):].lower()
        for section in SECTIONS:
            if rest.startswith(section + "_"):
                try:
                    value = tomllib.loads(f"v = {raw}")["v"]
                except tomllib.TOMLDecodeError:
                    value = raw
                out.setdefault(section, {})[rest[len(section) + 1:]] = value
                break
    return out


def build(data: dict, *, base_dir: str = ".", source: str = "config",
          env: typing.Mapping[str, str] | None = None) -> Config:
    """Validate a parsed TOML document (plus env overrides) into a Config."""
    problems: list[str] = []
    merged = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for section, values in _env_overrides(os.environ if env is None else env).items():
        if isinstance(merged.get(section, {}), dict):
            merged.setdefault(section, {}).update(values)
    sections = {}
    for name, value in merged.items():
        if name not in SECTIONS:
            problems.append(f"[{name}]: unknown section, expected one of {', '.join(SECTIONS)}")
        elif not isinstance(value, dict):
            problems.append(f"{name}: expected a [{name}] table")
    for name, cls in SECTIONS.items():
        given = merged.get(name, {})
        if not isinstance(given, dict):
            continue
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        kwargs = {}
        for key, value in given.items():
            if key not in fields:
                problems.append(f"{name}.{key}: unknown key, expected one of {', '.join(fields)}")
                continue
            coerced, problem = _check_value(f"{name}.{key}", hints[key], fields[key].metadata, value)
            if problem:
                problems.append(problem)
            else:
                kwargs[key] = coerced
        sections[name] = cls(**kwargs)
    if not problems:
        cam = sections["camera"]
        if cam.source in ("video", "images", "recorded_depth") and not cam.path:
            problems.append(f"camera.path: empty, expected a file or folder path when camera.source = {cam.source!r}")
        if cam.reconnect_initial_s > cam.reconnect_max_s:
            problems.append("camera.reconnect_initial_s: larger than camera.reconnect_max_s, expected it to be smaller")
        call = sections["call"]
        if bool(call.tls_cert) != bool(call.tls_key):
            problems.append("call.tls_key: set both call.tls_cert and call.tls_key, or neither")
        for key in ("tls_cert", "tls_key"):
            path = getattr(call, key)
            if path and not (Path(base_dir) / path).expanduser().is_file():
                problems.append(f"call.{key}: file {path!r} not found, expected a PEM file")
        if call.public_url and not call.public_url.startswith(("http://", "https://")):
            problems.append(f"call.public_url: got {call.public_url!r}, expected an http:// or https:// URL")
        if call.enabled and not call.tls_cert and not _is_loopback(call.host):
            problems.append(f"call.tls_cert: empty while call.host is {call.host!r}; browsers only allow the "
                            "camera over https off this machine, so set call.tls_cert and call.tls_key")
        for codec in call.codecs.split(","):
            if codec.strip().upper() not in ("VP8", "H264"):
                problems.append(f"call.codecs: got {codec.strip()!r}, expected VP8 and/or H264, comma-separated")
        if sections["display"].width > sections["display"].height:
            problems.append("display.width: wider than display.height, expected a portrait size")
        nfc, co = sections["nfc"], sections["checkout"]
        if nfc.retry_initial_s > nfc.retry_max_s:
            problems.append("nfc.retry_initial_s: larger than nfc.retry_max_s, expected it to be smaller")
        if co.retry_initial_s > co.retry_max_s:
            problems.append("checkout.retry_initial_s: larger than checkout.retry_max_s, expected it to be smaller")
        if co.store_url and not co.store_url.startswith(("http://", "https://")):
            problems.append(f"checkout.store_url: got {co.store_url!r}, expected an http:// or https:// URL "
                            "(or empty to pay at the till)")
        if not nfc.member_record.startswith("urn:nfc:ext:") or ":" not in nfc.member_record[len("urn:nfc:ext:"):]:
            problems.append(f"nfc.member_record: got {nfc.member_record!r}, expected an external type like "
                            "urn:nfc:ext:store.example:member")
    if problems:
        raise ConfigError(problems, source)
    return Config(**sections, base_dir=base_dir)


def _is_loopback(host: str) -> bool:
    return host == "localhost" or host.startswith("127.") or host == "::1"


def load(path: str | os.PathLike | None, *, env: typing.Mapping[str, str] | None = None) -> Config:
    """Load and validate a TOML config file; None gives the embedded defaults."""
    if path is None:
        return build({}, env=env, source="defaults")
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"file not found; create it or pass an existing file (see {CONFIG_DIR / 'mirror.toml'})"], str(p))
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError([f"cannot read it ({e.__class__.__name__}: {e})"], str(p))
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([f"not valid TOML: {e}"], str(p))
    return build(data, base_dir=str(p.resolve().parent), source=str(p), env=env)


def documented_defaults() -> dict[str, dict[str, object]]:
    """The defaults as a TOML-shaped dict (used to check config/mirror.toml)."""
    return {name: dataclasses.asdict(cls()) for name, cls in SECTIONS.items()}


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
             "# Relative paths are resolved against the folder of this file."]
    for name, cls in SECTIONS.items():
        lines += ["", f"[{name}]"]
        for f in dataclasses.fields(cls):
            m = f.metadata
            extra = []
            if m.get("choices"):
                extra.append("one of: " + ", ".join(m["choices"]))
            if m.get("min") is not None:
                extra.append(f"range {m['min']} to {m['max']}")
            lines.append(f"# {m['doc']}" + (f" ({'; '.join(extra)})" if extra else ""))
            lines.append(f"{f.name} = {fmt(f.default)}")
    return "\n".join(lines) + "\n"
