"""``keel serve``: run the OpenAI-compatible gateway."""

from __future__ import annotations

import socket
import sys
from typing import Annotated

import typer
import uvicorn

from keel.cli.common import ConfigOption, settings_from
from keel.errors import ConfigError
from keel.monitor.open import describe, ledger_target
from keel.pipeline import Pipeline
from keel.server import create_app


def register(app: typer.Typer) -> None:
    """Add the ``serve`` command."""
    app.command()(serve)


def serve(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Interface to listen on (default: server.host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: server.port; 0 picks a free one).")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
) -> None:
    """Run the gateway: POST /v1/chat/completions, GET /v1/models, GET /healthz."""
    settings = settings_from(config)
    pipeline = Pipeline(settings)
    host = host or settings.server.host
    port = settings.server.port if port is None else port
    sock = _bind(host, port)
    bound = sock.getsockname()[1]
    features = ", ".join(pipeline.features)
    print(
        f"keel: serving {features} on http://{host}:{bound}/v1 "
        f"(config: {settings.source}; ledger: {describe(ledger_target(settings))})",
        file=sys.stderr,
        flush=True,
    )
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(pipeline=pipeline),
            loop="uvloop",
            http="httptools",
            lifespan="on",
            access_log=False,
            proxy_headers=False,  # keel reads no client address; skip the per-request middleware
            log_level=log_level,
            timeout_graceful_shutdown=10,
        )
    )
    server.run(sockets=[sock])
    if not server.started:
        raise ConfigError("the gateway failed to start (see the messages above)")


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    # Listening now means clients that connect while models load wait in the backlog
    # instead of being refused.
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock
