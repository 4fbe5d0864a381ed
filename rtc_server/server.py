"""Running the application: TLS, the ready line, graceful shutdown on SIGTERM and SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
import sys

from aiohttp import web

from rtc_server import tls
from rtc_server.api.app import create_app
from rtc_server.config import Config

log = logging.getLogger("rtc_server")

# No Referer or User-Agent: they may carry invite URLs and are not needed to operate the service.
ACCESS_LOG_FORMAT = '%a "%r" %s %b %Tfs'


async def serve(config: Config) -> None:
    data = config.data_path
    data.mkdir(parents=True, exist_ok=True)
    ssl_context: ssl.SSLContext | None = None
    if config.server.tls:
        cert, key = tls.ensure_self_signed(data / "tls")
        ssl_context = tls.server_context(cert, key)
    app = create_app(config)
    runner = web.AppRunner(
        app,
        access_log_format=ACCESS_LOG_FORMAT,
        shutdown_timeout=config.server.shutdown_timeout_s,
        handle_signals=False,
    )
    await runner.setup()
    site = web.TCPSite(
        runner,
        config.server.host,
        config.server.port,
        ssl_context=ssl_context,
        shutdown_timeout=config.server.shutdown_timeout_s,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await site.start()
        scheme = "https" if ssl_context else "http"
        host = config.server.host if config.server.host not in ("0.0.0.0", "::") else "localhost"
        # With port 0 the kernel picks the port: report the one actually bound.
        bound = runner.addresses[0][1] if runner.addresses else config.server.port
        # Printed whatever the log level: scripts and operators wait for this one line.
        print(f"rtc-server ready at {scheme}://{host}:{bound} (data dir {data})", file=sys.stderr, flush=True)
        await stop.wait()
        log.info("shutting down: closing sessions and connections")
    finally:
        await runner.cleanup()
        log.info("stopped")
