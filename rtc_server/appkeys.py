"""Typed keys for what the aiohttp Application holds; the only place they are declared."""

from __future__ import annotations

import weakref

from aiohttp import web

from rtc_server.config import Config
from rtc_server.services import Services

CONFIG = web.AppKey("config", Config)
SERVICES = web.AppKey("services", Services)
# Open signaling sockets, so that shutdown can tell each browser to reconnect elsewhere at once.
SOCKETS = web.AppKey("sockets", weakref.WeakSet[web.WebSocketResponse])
