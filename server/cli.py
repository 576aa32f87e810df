"""``upscaler serve``: run the HTTP service (registered through the ``upscaler.commands`` entry point)."""

from __future__ import annotations

import argparse
from dataclasses import fields

__all__ = ["register"]


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``serve`` subcommand: one flag per setting (see ``server.settings.Settings``)."""
    from server.settings import ENV_PREFIX, Settings

    p = sub.add_parser(
        "serve",
        help="run the HTTP frame-upscale service",
        description="Serve the upscaler over HTTP (FastAPI + uvicorn). Every flag can also be set by an "
        f"environment variable {ENV_PREFIX}<FLAG> (e.g. {ENV_PREFIX}MAX_BATCH_SIZE=8); flags win.",
    )
    defaults = Settings()
    for f in fields(Settings):
        default = getattr(defaults, f.name)
        env = f"{ENV_PREFIX}{f.name.upper()}"
        if isinstance(default, bool):
            p.add_argument(_flag(f.name), action=argparse.BooleanOptionalAction, default=None, help=f"[{env}]")
        elif isinstance(default, list):
            shown = ",".join(default) if f.name != "api_keys" else "none"
            p.add_argument(
                _flag(f.name),
                type=lambda t: [v for v in t.split(",") if v],
                default=None,
                help=f"comma-separated (default: {shown}) [{env}]",
            )
        else:
            p.add_argument(_flag(f.name), type=type(default), default=None, help=f"(default: {default}) [{env}]")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import logging

    import uvicorn

    from server.app import create_app
    from server.settings import Settings, load_settings
    from upscaler.models import get_model

    overrides = {f.name: getattr(args, f.name) for f in fields(Settings)}
    settings = load_settings(overrides)
    for name in settings.models:  # fail now, with the known names, not inside the server
        get_model(name)
    access = logging.getLogger("upscaler.access")
    access.setLevel(logging.INFO if settings.access_log else logging.WARNING)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    access.addHandler(handler)
    access.propagate = False
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        access_log=False,  # the service writes its own structured lines
        timeout_graceful_shutdown=int(settings.shutdown_timeout_s),
        log_level="info",
    )
    uvicorn.Server(config).run()
    return 0
