"""The `rtc-server` command: serve, users, and the offline verifiers."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

from rtc_server.config import Config, ConfigError, load_config
from rtc_server.errors import ApiError
from rtc_server.models import Role

EXIT_USAGE = 2


def _config_from(args: argparse.Namespace) -> Config:
    overrides: dict[str, dict[str, Any]] = {}
    if getattr(args, "data_dir", None):
        overrides.setdefault("server", {})["data_dir"] = args.data_dir
    if getattr(args, "host", None):
        overrides.setdefault("server", {})["host"] = args.host
    if getattr(args, "port", None) is not None:
        overrides.setdefault("server", {})["port"] = args.port
    if getattr(args, "no_tls", False):
        overrides.setdefault("server", {})["tls"] = False
    return load_config(Path(args.config) if getattr(args, "config", None) else None, overrides=overrides)


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


def cmd_serve(args: argparse.Namespace) -> int:
    from rtc_server.server import serve

    config = _config_from(args)
    _setup_logging(config.log.level)
    print(
        f"rtc-server: data dir {config.data_path}\n"
        "  Create the first officer account with:\n"
        f"    {sys.argv[0]} users add NAME --role officer --password-stdin"
        f" --data-dir {config.server.data_dir}",
        file=sys.stderr,
    )
    asyncio.run(serve(config))
    return 0


def cmd_users_add(args: argparse.Namespace) -> int:
    from rtc_server.accounts import AccountService
    from rtc_server.storage import Repository, open_database

    config = _config_from(args)
    if not args.password_stdin:
        print("rtc-server: give the password on standard input with --password-stdin", file=sys.stderr)
        return EXIT_USAGE
    password = sys.stdin.readline().rstrip("\r\n")
    config.data_path.mkdir(parents=True, exist_ok=True)

    async def run() -> tuple[bool, str]:
        db = await open_database(config.data_path, config.storage.database_url)
        try:
            accounts = AccountService(Repository(db), config.auth)
            user, created = await accounts.add_user(args.name, password, Role(args.role))
            return created, user.id
        finally:
            await db.close()

    try:
        created, user_id = asyncio.run(run())
    except ApiError as exc:
        print(f"rtc-server: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    print(f"{'created' if created else 'updated'} {args.role} {args.name} ({user_id})")
    return 0


def cmd_verify_recording(args: argparse.Namespace) -> int:
    import recordings

    argv = [args.path]
    for trust in args.trust or []:
        argv += ["--trust", trust]
    return recordings.main(argv)


def cmd_verify_pdf(args: argparse.Namespace) -> int:
    from signing import verify_pdf_main

    return verify_pdf_main(args.file, args.trust or [], sys.stdout)


def cmd_bench(args: argparse.Namespace) -> int:
    # bench/ sits beside the package in the source tree and is not installed: reach it from there.
    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:
        sys.path.insert(0, root)
    try:
        from bench.cli import main as bench_main
    except ModuleNotFoundError:
        print(
            "rtc-server bench runs from a source checkout (bench/ is not installed with the package)",
            file=sys.stderr,
        )
        return 2

    return bench_main(args.bench_args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rtc-server", description="Real-time video verification and signing"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the API, media and web pages")
    serve.add_argument(
        "--config", help="TOML config file (default: rtc_server/default.toml, every key documented)"
    )
    serve.add_argument("--data-dir", help="data directory (default ./var)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--no-tls", action="store_true", help="serve plain HTTP (loopback or behind a proxy)")
    serve.set_defaults(func=cmd_serve)

    users = sub.add_parser("users", help="manage back-office accounts")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    add = users_sub.add_parser("add", help="create or update an account")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.add_argument("--config")
    add.add_argument("--data-dir")
    add.set_defaults(func=cmd_users_add)

    verify = sub.add_parser("verify-recording", help="check a recording folder or evidence zip offline")
    verify.add_argument(
        "path", help="a recording folder (a track, a session's recordings) or an evidence zip"
    )
    verify.add_argument(
        "--trust", action="append", help="PEM public key or certificate the manifests must use"
    )
    verify.set_defaults(func=cmd_verify_recording)

    verify_pdf = sub.add_parser("verify-pdf", help="check every signature and timestamp of a signed PDF")
    verify_pdf.add_argument("file", help="the PDF")
    verify_pdf.add_argument("--trust", action="append", help="PEM file of trusted root certificates")
    verify_pdf.set_defaults(func=cmd_verify_pdf)

    bench = sub.add_parser(
        "bench", help="latency and capacity benchmarks (bench/README.md)", add_help=False, prefix_chars="\0"
    )
    bench.add_argument("bench_args", nargs=argparse.REMAINDER)
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
        return result
    except ConfigError as exc:
        print(f"rtc-server: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
