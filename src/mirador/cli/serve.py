"""`mirador serve`: the local server (native, Ollama- and OpenAI-compatible APIs, web page)."""

from __future__ import annotations

import errno
import socket

import click

from mirador.errors import ConfigError
from mirador.settings import Settings, load_settings


@click.command()
@click.option("--host", help="Address to listen on (default: server.host, 127.0.0.1). "
              "Anything but loopback needs an API token.")
@click.option("--port", type=click.IntRange(1, 65535), help="Port (default: server.port, "
              "11535).")
@click.option("--token", envvar="MIRADOR_API_TOKEN", help="Bearer token every API call must "
              "send (or $MIRADOR_API_TOKEN).")
@click.option("--cors-origin", "cors", multiple=True, help="Allow browser calls from this "
              "origin (repeatable; none by default).")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
def serve(host: str | None, port: int | None, token: str | None, cors: tuple[str, ...],
          log_level: str) -> None:
    """Serve Mirador on http://127.0.0.1:11535: Ollama API at /api, OpenAI at /v1, page at /."""
    import uvicorn

    from mirador.server.app import create_app
    from mirador.server.limits import api_token, check_bind

    settings = _with_overrides(load_settings(), host, port, token, cors)
    cfg = settings.config.server
    check_bind(cfg.host, api_token(settings))
    _check_port_free(cfg.host, cfg.port)
    app = create_app(settings)  # a bad agent declaration stops here, before "serving on"
    shown = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
    click.echo(f"Mirador serving on http://{shown}:{cfg.port}  (web page /, Ollama API /api, "
               f"OpenAI API /v1, Mirador API /mirador, API description /openapi.json)", err=True)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level=log_level,
                ws="none", lifespan="on", timeout_graceful_shutdown=5)


def _with_overrides(settings: Settings, host: str | None, port: int | None,
                    token: str | None, cors: tuple[str, ...]) -> Settings:
    update: dict[str, object] = {}
    if host:
        update["host"] = host
    if port:
        update["port"] = port
    if token:
        update["api_token"] = token
    if cors:
        update["cors_origins"] = list(cors)
    if not update:
        return settings
    server = settings.config.server.model_validate(
        {**settings.config.server.model_dump(), **update})
    config = settings.config.model_copy(update={"server": server})
    return Settings(home=settings.home, config=config, env=settings.env)


def _check_port_free(host: str, port: int) -> None:
    """Fail with advice rather than uvicorn's bare errno when the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(f"port {port} on {host} is already in use (is Mirador "
                                  "already running?); stop it or pick another with "
                                  "--port N") from None
            raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}); "
                              "check --host") from None
