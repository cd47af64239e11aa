"""``keel fake-upstream``: a deterministic OpenAI-compatible server with fault injection."""

from __future__ import annotations

import re
import sys
from typing import Annotated

import typer

from keel.errors import ConfigError
from keel.testing.fake_knobs import Knobs
from keel.testing.fake_upstream import run

_KNOB = re.compile(r"\b[a-z]+(?:_[a-z]+)+\b")


def register(app: typer.Typer) -> None:
    """Add the ``fake-upstream`` command."""
    app.command("fake-upstream")(fake_upstream)


def fake_upstream(
    port: Annotated[int, typer.Option(help="Port (0 picks a free one).")] = 9100,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    latency_ms: Annotated[float, typer.Option(help="Added before every answer (ms).")] = 0.0,
    chunk_delay_ms: Annotated[float, typer.Option(help="Between stream chunks (ms).")] = 0.0,
    error_rate: Annotated[float, typer.Option(help="Share of requests answered with --error-status.")] = 0.0,
    error_status: Annotated[
        int, typer.Option(help="Status of injected errors (429 carries Retry-After).")
    ] = 500,
    timeout_rate: Annotated[
        float, typer.Option(help="Share of requests that hang until the client gives up.")
    ] = 0.0,
    hang_ms: Annotated[float, typer.Option(help="The longest a hanging request waits (ms).")] = 600_000.0,
    malformed_rate: Annotated[float, typer.Option(help="Share of requests answered with broken JSON.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of the fault draws (a run is reproducible).")] = 0,
    stream_error_after: Annotated[
        int | None, typer.Option(help="Streams fail with an error event after N content chunks.")
    ] = None,
    no_usage: Annotated[bool, typer.Option("--no-usage", help="Omit usage from every answer.")] = False,
    embedding_dim: Annotated[int, typer.Option(help="Dimension of /v1/embeddings vectors.")] = 384,
    model: Annotated[str, typer.Option(help="The model id /v1/models lists.")] = "fake-model",
    rogue_tool: Annotated[
        str | None, typer.Option(help="Answer requests that offer tools with a call to this tool instead.")
    ] = None,
) -> None:
    """Serve a fake OpenAI-compatible upstream (chat, streaming, tools, embeddings) with faults."""
    try:
        knobs = Knobs(
            latency_ms=latency_ms,
            chunk_delay_ms=chunk_delay_ms,
            error_rate=error_rate,
            error_status=error_status,
            timeout_rate=timeout_rate,
            hang_ms=hang_ms,
            malformed_rate=malformed_rate,
            seed=seed,
            stream_error_after=stream_error_after,
            no_usage=no_usage,
            embedding_dim=embedding_dim,
            model=model,
            rogue_tool=rogue_tool,
        )
    except ValueError as exc:
        # Knob names become the flags the user typed: error_rate -> --error-rate.
        raise ConfigError(_KNOB.sub(lambda m: "--" + m[0].replace("_", "-"), str(exc))) from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be between 0 and 65535, got {port}")

    def ready(base_url: str) -> None:
        print(f"keel fake-upstream: listening on {base_url}", file=sys.stderr, flush=True)

    try:
        run(host, port, ready=ready, **knobs.to_dict())
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


if __name__ == "__main__":
    _app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    register(_app)
    _app()
