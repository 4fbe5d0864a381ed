"""Fixtures: a config on a temporary data dir and the real app with logged-in callers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from rtc_server.config import Config
from tests.support import Api, make_config, start_api


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path / "data")


@pytest.fixture
async def api(aiohttp_client: Callable[..., Awaitable[TestClient]], config: Config) -> Api:
    return await start_api(aiohttp_client, config)
