"""What the analyser tells the rest of the server: typed events with a JSON-ready `data()`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

HintName = Literal["too_dark", "blurred", "frozen", "covered"]

# Plain words for the staff page. Chinese is Simplified (zh-CN).
HINT_MESSAGES: dict[str, dict[str, str]] = {
    "too_dark": {
        "en": "More light, please: the picture is too dark.",
        "zh": "光线太暗，请打开灯或靠近光源。",
    },
    "blurred": {"en": "Hold steady: the picture is blurred.", "zh": "请保持手机稳定，画面模糊。"},
    "frozen": {
        "en": "The picture is not moving: check the camera.",
        "zh": "画面静止不动，请检查摄像头。",
    },
    "covered": {
        "en": "The camera seems covered: uncover the lens.",
        "zh": "摄像头似乎被遮挡，请移开遮挡物。",
    },
}


@dataclass(frozen=True, slots=True)
class BBox:
    """Axis-aligned box around a code, normalised to the frame: 0..1 from the top left corner."""

    x: float
    y: float
    w: float
    h: float

    def data(self) -> dict[str, float]:
        return {"x": round(self.x, 4), "y": round(self.y, 4), "w": round(self.w, 4), "h": round(self.h, 4)}


@dataclass(frozen=True, slots=True)
class CodeDetected:
    """A new sighting of a code. `sku` is set when it matches a checklist item; `unexpected` when the
    session has a checklist and the code is not on it; `count` is that item's sightings so far."""

    value: str
    format: str
    bbox: BBox
    media_time: float
    wallclock: float
    sku: str | None = None
    unexpected: bool = False
    count: int = 1

    type: Literal["code.detected"] = "code.detected"

    def data(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "value": self.value,
            "format": self.format,
            "bbox": self.bbox.data(),
            "media_time": round(self.media_time, 3),
            "wallclock": self.wallclock,
            "unexpected": self.unexpected,
        }
        if self.sku is not None:
            out["sku"] = self.sku
            out["count"] = self.count
        return out


@dataclass(frozen=True, slots=True)
class QualityHint:
    """A quality hint turning on or off."""

    hint: HintName
    active: bool
    media_time: float
    wallclock: float

    type: Literal["quality.hint"] = "quality.hint"

    @property
    def messages(self) -> dict[str, str]:
        return HINT_MESSAGES[self.hint]

    def data(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "hint": self.hint,
            "active": self.active,
            "media_time": round(self.media_time, 3),
            "wallclock": self.wallclock,
        }
        if self.active:
            out["message"] = dict(self.messages)
        return out


AnalysisEvent = CodeDetected | QualityHint


@dataclass(frozen=True, slots=True)
class Detection:
    """One code read in one frame, before de-duplication into sightings."""

    value: str
    format: str
    bbox: BBox
