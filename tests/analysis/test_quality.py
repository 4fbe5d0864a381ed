"""Quality hints over decoded VP8 pictures: measures, latches with hysteresis, precedence."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from rtc_server.analysis import HINT_MESSAGES, QualityHint, QualitySettings
from rtc_server.analysis.decoder import FrameDecoder, luma
from rtc_server.analysis.quality import QualityMonitor, measure

from .video import encode_clip, scene

W, H = 640, 480


def through_vp8(bgr: np.ndarray) -> np.ndarray:
    """The picture as the analyser sees it: VP8 at a phone's bitrate, decoded, luma."""
    decoder = FrameDecoder("VP8")
    pictures = [p for data in encode_clip([bgr] * 3) for p in decoder.decode(data, True)]
    return np.ascontiguousarray(luma(pictures[-1]))


@pytest.fixture(scope="module", params=[(640, 480), (1280, 720)], ids=["640x480", "1280x720"])
def pictures(request: pytest.FixtureRequest) -> dict[str, np.ndarray]:
    w, h = request.param
    base = scene(w, h)
    noise = np.random.default_rng(3).normal(22, 1.5, (h, w, 3))
    return {
        "sharp": through_vp8(base),
        # The same optical defocus whatever the resolution: sigma in proportion to the width.
        "blurred": through_vp8(cv2.GaussianBlur(base, (0, 0), 2.5 * w / 640)),
        "dark": through_vp8(scene(w, h, level=0.15)),
        "covered": through_vp8(np.clip(noise, 0, 255).astype(np.uint8)),
    }


def run(monitor: QualityMonitor, gray: np.ndarray, start: float, seconds: float, fps: float = 5.0) -> list:
    changes = []
    m = measure(gray)
    for i in range(int(seconds * fps)):
        changes += monitor.update(m, start + i / fps)
    return changes


@pytest.mark.parametrize("name", ["blurred", "dark", "covered"])
def test_hint_fires_on_bad_input_and_clears_on_a_good_picture(pictures: dict, name: str) -> None:
    hint = {"blurred": "blurred", "dark": "too_dark", "covered": "covered"}[name]
    monitor = QualityMonitor(QualitySettings())
    # 15 analysed frames over 2.8 s: shorter than frozen_after_s, so "frozen" stays out of it.
    changes = run(monitor, pictures[name], 0.0, 3.0)
    assert changes == [(hint, True)]
    assert monitor.active() == {hint}
    assert run(monitor, pictures["sharp"], 3.0, 3.0) == [(hint, False)]
    assert monitor.active() == set()


def test_sharp_lit_picture_stays_quiet(pictures: dict) -> None:
    monitor = QualityMonitor(QualitySettings())
    rng = np.random.default_rng(0)
    changes = []
    for i in range(50):  # 10 s of a live (slightly changing) sharp picture
        moved = np.roll(pictures["sharp"], int(rng.integers(1, 20)), axis=1)
        changes += monitor.update(measure(moved), i / 5)
    assert changes == []


def test_frozen_fires_on_a_repeated_frame_and_clears_when_it_moves(pictures: dict) -> None:
    s = QualitySettings(frozen_after_s=3.0)
    monitor = QualityMonitor(s)
    frame = pictures["sharp"]
    changes = []
    for i in range(14):  # 2.6 s: not yet
        changes += monitor.update(measure(frame), i / 5)
    assert changes == []
    for i in range(14, 20):
        changes += monitor.update(measure(frame), i / 5)
    assert changes == [("frozen", True)]
    assert monitor.update(measure(np.roll(frame, 40, axis=0)), 4.0) == [("frozen", False)]


def test_hysteresis_borderline_picture_does_not_flap() -> None:
    s = QualitySettings()
    monitor = QualityMonitor(s)
    rng = np.random.default_rng(1)
    base = rng.integers(0, 40, (H, W), dtype=np.uint8)
    changes = []
    t = 0.0
    # Brightness alternating just below dark_on and inside the hysteresis band, every analysed frame.
    for i in range(60):
        level = s.dark_on - 5 if i < 10 else (s.dark_on + 5 if i % 2 else s.dark_on - 1)
        gray = (base + (level - base.mean())).clip(0, 255).astype(np.uint8)
        changes += [c for c in monitor.update(measure(np.roll(gray, i, axis=1)), t) if c[0] == "too_dark"]
        t += 0.2
    assert changes == [("too_dark", True)]


def test_dwell_brief_dark_frames_do_not_fire(pictures: dict) -> None:
    monitor = QualityMonitor(QualitySettings(on_after_s=1.0))
    changes = []
    for i in range(30):
        # 0.6 s of dark every 2 s (a hand passing in front of the lamp)
        gray = pictures["dark"] if i % 10 < 3 else pictures["sharp"]
        changes += monitor.update(measure(np.roll(gray, i, axis=1)), i / 5)
    assert changes == []


def test_covered_silences_dark_and_blurred(pictures: dict) -> None:
    monitor = QualityMonitor(QualitySettings())
    changes = run(monitor, pictures["dark"], 0.0, 2.0)
    assert ("too_dark", True) in changes
    changes = run(monitor, pictures["covered"], 2.0, 3.0)
    assert ("too_dark", False) in changes and ("covered", True) in changes
    assert monitor.active() == {"covered"}


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError):
        measure(np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(ValueError):
        measure(np.zeros((10, 10), np.float32))
    with pytest.raises(ValueError):
        measure(np.zeros((0, 0), np.uint8))


def test_hint_messages_in_plain_words() -> None:
    assert set(HINT_MESSAGES) == {"too_dark", "blurred", "frozen", "covered"}
    assert all(m["en"] and m["zh"] for m in HINT_MESSAGES.values())
    on = QualityHint("blurred", True, 1.0, 2.0).data()
    assert on["message"]["en"].startswith("Hold steady") and on["hint"] == "blurred"
    assert "message" not in QualityHint("blurred", False, 1.0, 2.0).data()
