"""Fixtures for the media tests: a MediaService on loopback, closed (and checked) after each test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from rtc_server.media import MediaService, MediaSettings


@pytest.fixture
def media_settings() -> MediaSettings:
    return MediaSettings(max_peers=20, keyframe_min_interval_s=0.2)


@pytest.fixture
async def media(media_settings: MediaSettings) -> AsyncIterator[MediaService]:
    service = MediaService(media_settings)
    try:
        yield service
    finally:
        await service.close()
