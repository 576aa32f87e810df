"""``upscaler serve``: run the HTTP service (registered through the ``upscaler.commands`` entry point)."""

from __future__ import annotations

import argparse
import errno
from dataclasses import fields

__all__ = ["register"]


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _comma_list(text: str) -> list[str]:
    return [v for v in text.split(",") if v]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``serve`` subcommand: one flag per setting (see ``server.settings.Settings``)."""
    from server.settings import ENV_PREFIX, Settings, choices_of, help_of

    p = sub.add_parser(
        "serve",
        help="run the HTTP frame-upscale service",
        description="Serve the upscaler over HTTP (FastAPI + uvicorn). Every flag can also be set by an "
        f"environment variable {ENV_PREFIX}<FLAG> (e.g. {ENV_PREFIX}MAX_BATCH_SIZE=8); flags win.",
    )
    defaults = Settings()
    for f in fields(Settings):
        default = getattr(defaults, f.name)
        env = f"[{ENV_PREFIX}{f.name.upper()}]"
        text = help_of(f.name)
        if isinstance(default, bool):
            shown = "on" if default else "off"
            p.add_argument(
                _flag(f.name),
                action=argparse.BooleanOptionalAction,
                default=None,
                help=f"{text} (default: {shown}) {env}",
            )
        elif isinstance(default, list):
            shown = ",".join(default) if f.name != "api_keys" else "none"
            p.add_argument(
                _flag(f.name),
                type=_comma_list,
                default=None,
                metavar="A,B",
                help=f"{text}; comma-separated (default: {shown or 'none'}) {env}",
            )
        else:
            # Choices are shown, not enforced by argparse: the settings check reports a bad value in one
            # line, with every other problem, as for the environment variables.
            choices = choices_of(f.name)
            shown = repr(default) if default == "" else default
            p.add_argument(
                _flag(f.name),
                type=type(default),
                default=None,
                metavar=f.name.upper(),
                help=f"{text}; one of: {', '.join(c or repr(c) for c in choices)} (default: {shown}) {env}"
                if choices
                else f"{text} (default: {shown}) {env}",
            )
    _add_ray_flags(p)
    p.set_defaults(func=_run)


def _add_ray_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("scale-out on Ray Serve (pip install 'upscaler[ray]')")
    g.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="serve as Ray Serve replicas on the cluster at ADDRESS (host:port, or 'auto'); without "
                   "ADDRESS, on a Ray instance started here")  # fmt: skip
    g.add_argument("--replicas", type=int, default=None, metavar="N", help="replicas (default: 1)")
    g.add_argument("--min-replicas", type=int, default=None, metavar="N", help="autoscale from N replicas...")
    g.add_argument("--max-replicas", type=int, default=None, metavar="N", help="...up to N (with --min-replicas)")
    g.add_argument("--replica-cpus", type=float, default=1.0, metavar="C", help="CPUs each replica takes (default: 1)")
    g.add_argument("--replica-gpus", type=float, default=0.0, metavar="G", help="GPUs each replica takes (default: 0)")
    g.add_argument("--proxy-location", choices=("EveryNode", "HeadOnly"), default=None,
                   help="where Serve's HTTP proxies listen on --host:--port (default: EveryNode)")  # fmt: skip


def _replicas(args: argparse.Namespace):
    """The ``Replicas`` the flags ask for (None without ``--ray``; ``ValueError`` for flags without it)."""
    given = [f for f in ("replicas", "min_replicas", "max_replicas") if getattr(args, f) is not None]
    given += [f for f, d in (("replica_cpus", 1.0), ("replica_gpus", 0.0)) if getattr(args, f) != d]
    given += ["proxy_location"] if args.proxy_location else []
    if args.ray is None:
        if given:
            raise ValueError(f"{_flag(given[0])} needs --ray")
        return None
    from server.ray_serve import Replicas

    autoscale = args.min_replicas is not None or args.max_replicas is not None
    count = args.replicas if args.replicas is not None or autoscale else 1
    return Replicas(count, args.min_replicas, args.max_replicas, args.replica_cpus, args.replica_gpus)


def _run(args: argparse.Namespace) -> int:
    from server.runner import run
    from server.settings import Settings, load_settings
    from upscaler.models import get_model

    overrides = {f.name: getattr(args, f.name) for f in fields(Settings)}
    settings = load_settings(overrides)
    replicas = _replicas(args)
    for name in settings.models:  # fail now, with the known names, not inside the server
        get_model(name)
    if replicas is None or args.ray == "local":
        _check_port(settings.host, settings.port)  # before the models load and warm up, not after
    if replicas is not None:
        from server.ray_serve import run_on_ray

        return run_on_ray(settings, args.ray, replicas, proxy_location=args.proxy_location or "EveryNode")
    return run(settings)


def _check_port(host: str, port: int) -> None:
    """``OSError`` in one line if ``host:port`` cannot be listened on (in use, or not an address here), tried
    as uvicorn will bind it (``SO_REUSEADDR``)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise OSError(f"--host {host}: not an address here ({exc.strerror})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            hint = "; stop what listens there or pick another with --port" if exc.errno == errno.EADDRINUSE else ""
            raise OSError(f"cannot listen on {host}:{port}: {exc.strerror}{hint}") from None
