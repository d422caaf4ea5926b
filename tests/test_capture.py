import threading
import time

import cv2
import numpy as np
import pytest

from vision.capture import (EndOfStream, Frame, FrameSource, ImageFolderSource, RecordedDepthSource, SourceError,
                            SupervisedSource, VideoFileSource, WebcamSource, decoded_rows, read_image)
from vision.depth import PresenceTracker, cut_behind, presence_from_depth


class FlakyCamera(FrameSource):
    """Delivers frames, then fails, refuses to reopen for a while, then works again."""

    def __init__(self, state):
        self.state = state

    def open(self):
        if time.monotonic() < self.state["down_until"]:
            raise SourceError("camera 0 cannot be opened")

    def read(self):
        time.sleep(0.01)
        self.state["reads"] += 1
        if self.state["reads"] == 20:
            self.state["down_until"] = time.monotonic() + 0.6
            raise SourceError("camera 0 stopped delivering frames")
        return Frame(np.zeros((48, 64, 3), np.uint8), time.monotonic(), self.state["reads"])


def test_camera_loss_is_reported_and_recovered_with_backoff():
    state = {"reads": 0, "down_until": 0.0}
    events = []
    sup = SupervisedSource(lambda: FlakyCamera(state), stall_timeout=1.0, backoff_initial=0.05, backoff_max=0.2,
                           on_event=lambda n, m: events.append((n, m)))
    sup.start()
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and [n for n, _ in events] != ["camera.lost", "camera.restored"]:
            time.sleep(0.05)
        assert [n for n, _ in events] == ["camera.lost", "camera.restored"]
        assert "camera unavailable, retrying" in events[0][1]
        assert sup.reconnects >= 2      # it kept trying while the camera refused to open
        _, seq = sup.latest()
        frame, seq2 = sup.wait_newer(seq, 1.0)
        assert seq2 > seq and sup.ok
    finally:
        sup.stop()


class LockedFolderCamera(FlakyCamera):
    """A camera whose path cannot be read at first (a folder's permissions), then can."""

    def open(self):
        if time.monotonic() < self.state["down_until"]:
            raise PermissionError(13, "Permission denied", "/srv/clips/locked")


def test_a_camera_that_cannot_be_read_is_retried_not_the_end_of_capture():
    """A PermissionError while opening used to end the capture thread for good."""
    state = {"reads": 0, "down_until": time.monotonic() + 0.6}
    events = []
    sup = SupervisedSource(lambda: LockedFolderCamera(state), stall_timeout=1.0, backoff_initial=0.05,
                           backoff_max=0.2, on_event=lambda n, m: events.append((n, m)))
    sup.start()
    try:
        said = set()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "camera.restored" not in [n for n, _ in events]:
            said.add(sup.problem)
            time.sleep(0.01)
        # on screen meanwhile
        assert any("camera unavailable, retrying" in x and "Permission denied" in x for x in said), said
        assert [n for n, _ in events] == ["camera.restored"] and sup.ok and sup.reconnects >= 2
    finally:
        sup.stop()


def test_an_undecodable_picture_in_a_looping_folder_is_said_once(tmp_path, caplog):
    import logging
    cv2.imwrite(str(tmp_path / "a.png"), np.full((10, 10, 3), 50, np.uint8))
    (tmp_path / "b.jpg").write_bytes(b"garbage")
    src = ImageFolderSource(tmp_path, loop=True, fps=1000)
    src.open()
    with caplog.at_level(logging.WARNING, logger="vision.capture"):
        for _ in range(10):
            src.read()
    assert sum("b.jpg" in r.getMessage() for r in caplog.records) == 1


class StallingCamera(FrameSource):
    def __init__(self):
        self.n = 0
        self.closed = threading.Event()

    def read(self):
        self.n += 1
        if self.n > 5:
            self.closed.wait(10)        # a read that hangs until the device is closed
            raise SourceError("read aborted")
        return Frame(np.zeros((8, 8, 3), np.uint8), time.monotonic(), self.n)

    def close(self):
        self.closed.set()


def test_stalled_camera_counts_as_lost():
    events = []
    sup = SupervisedSource(StallingCamera, stall_timeout=0.3, backoff_initial=0.05,
                           on_event=lambda n, m: events.append(n)).start()
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and "camera.lost" not in events:
            sup.latest()
            time.sleep(0.05)
        assert "camera.lost" in events
        assert "no frame for" in sup.problem or sup.ok
    finally:
        sup.stop()


def test_missing_camera_index_is_a_clear_error():
    with pytest.raises(SourceError, match="camera index 42 does not exist"):
        WebcamSource(42).open()


def test_missing_or_corrupt_media(tmp_path):
    with pytest.raises(SourceError, match="not found"):
        VideoFileSource(tmp_path / "nope.mp4").open()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 1000)
    with pytest.raises(SourceError, match="cannot decode"):
        VideoFileSource(bad).open()
    img = tmp_path / "bad.jpg"
    img.write_bytes(b"not a jpeg")
    with pytest.raises(SourceError, match="cannot decode the image"):
        read_image(img)


def test_decoded_rows_end_where_the_flat_band_a_truncated_file_leaves_begins():
    img = np.random.default_rng(0).integers(0, 256, (50, 40, 3), dtype=np.uint8)
    assert decoded_rows(img) == 50                     # a whole picture
    img[30:] = 128                                     # the decoder's grey below row 30
    img[29, :5] = 128                                  # a grey patch in a real row is no band
    assert decoded_rows(img) == 30
    img[:] = 128
    assert decoded_rows(img) == 0


def test_image_folder_skips_corrupt_files_and_ends(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.full((10, 10, 3), 50, np.uint8))
    (tmp_path / "b.jpg").write_bytes(b"garbage")
    cv2.imwrite(str(tmp_path / "c.png"), np.full((10, 10, 3), 90, np.uint8))
    src = ImageFolderSource(tmp_path, loop=False)
    src.open()
    values = [int(src.read().image[0, 0, 0]), int(src.read().image[0, 0, 0])]
    assert values == [50, 90]
    with pytest.raises(EndOfStream):
        src.read()


def test_video_file_loops_with_timestamps(media):
    src = VideoFileSource(media / "clips" / "open_palm_360p.mp4", loop=True)
    src.open()
    frames = [src.read() for _ in range(250)]      # the clip has about 200 frames
    src.close()
    assert frames[0].image.shape == (360, 640, 3)
    assert all(b.ts >= a.ts for a, b in zip(frames, frames[1:]))


def test_recorded_depth_pairs_and_size_mismatch(media, tmp_path):
    colour = cv2.imread(str(media / "depth" / "tum_color.png"))
    depth = cv2.imread(str(media / "depth" / "tum_depth_mm.png"), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(tmp_path / "0001_color.png"), colour)
    cv2.imwrite(str(tmp_path / "0001_depth.png"), depth)
    src = RecordedDepthSource(tmp_path)
    src.open()
    f = src.read()
    assert f.depth is not None and f.depth.dtype == np.uint16 and f.depth.shape == colour.shape[:2]
    cv2.imwrite(str(tmp_path / "0002_color.png"), colour)
    cv2.imwrite(str(tmp_path / "0002_depth.png"), cv2.resize(depth, (320, 240), interpolation=cv2.INTER_NEAREST))
    src.open()
    src.read()
    with pytest.raises(SourceError, match="depth is 320x240 but colour is 640x480"):
        src.read()


def test_depth_cuts_what_lies_behind_the_person_and_reports_presence():
    depth = np.full((100, 100), 4000, np.uint16)     # wall at 4 m
    depth[20:90, 30:70] = 1500                       # person at 1.5 m
    mask = np.zeros((100, 100), np.float32)
    mask[15:95, 25:75] = 1.0                         # the segmenter bled onto the wall
    cut = cut_behind(mask, depth, 0.6)
    assert cut[50, 50] == 1.0 and cut[17, 27] == 0.0
    p = presence_from_depth(depth, 2.5, 0.08)
    assert p.present and abs(p.distance_m - 1.5) < 0.01
    assert not presence_from_depth(np.full((100, 100), 4000, np.uint16), 2.5, 0.08).present
    tr = PresenceTracker(arrive_s=0.5, leave_s=2.0)
    assert [tr.update(True, t) for t in (0, 0.3, 0.6)] == [None, None, "arrived"]
    assert [tr.update(False, t) for t in (1.0, 2.0, 3.1)] == [None, None, "left"]


def _clip_with_times(path, times_ms: list[int]) -> None:
    """A clip whose frames carry these timestamps (a phone's variable frame rate)."""
    import fractions
    import av
    with av.open(str(path), "w") as out:
        s = out.add_stream("mpeg4", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.codec_context.time_base = fractions.Fraction(1, 1000)
        for i, t in enumerate(times_ms):
            img = np.full((48, 64, 3), 20 * i % 250, np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="bgr24")
            frame.pts, frame.time_base = t, fractions.Fraction(1, 1000)
            for packet in s.encode(frame):
                out.mux(packet)
        for packet in s.encode():
            out.mux(packet)


def test_a_clip_says_each_frames_own_time_and_counts_on_over_loops(tmp_path):
    """`mirror replay` reports and times actions in clip time: with a variable
    frame rate, a frame's number over the frame rate is not its time."""
    times = [0, 20, 40, 60, 80, 140, 200, 260, 320, 380]
    clip = tmp_path / "vfr.mp4"
    _clip_with_times(clip, times)
    src = VideoFileSource(clip, loop=True)
    src.open()
    seen = []
    for _ in range(2 * len(times)):
        src.read()
        seen.append(round(src.clip_t * 1000))
    src.close()
    step = round(1000 / src.clip_fps)
    assert seen[:len(times)] == times
    # the second pass starts a frame after the first one's last frame
    assert seen[len(times):] == [t + times[-1] + step for t in times]


def test_a_leaping_timestamp_is_taken_as_one_frame_step(tmp_path):
    """One corrupt timestamp 15 minutes on would shift every later frame (and a
    replay's --seconds would end at the next frame)."""
    clip = tmp_path / "leap.mp4"
    _clip_with_times(clip, [0, 40, 80, 900_080, 900_120, 900_160])
    src = VideoFileSource(clip, loop=False)
    src.open()
    seen = []
    for _ in range(6):
        src.read()
        seen.append(round(src.clip_t * 1000))
    src.close()
    assert seen[:3] == [0, 40, 80]
    assert all(0 < b - a <= 100 for a, b in zip(seen, seen[1:])), seen
