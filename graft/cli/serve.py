"""`graft serve`: a model and its adapters behind the OpenAI-compatible API (see docs/serve.md)."""

from __future__ import annotations

from typing import Optional

import typer
from rich.console import Console

from graft.server.settings import TOKEN_ENV

out = Console(stderr=True)


def serve(
    model: Optional[str] = typer.Argument(None, help="base model (catalog name, folder, .gguf, Hub id), or a run "
                                          "folder: its base plus its adapter, named after the folder; none: the "
                                          "default base loads at the first chat request"),
    adapter: list[str] = typer.Option([], "--adapter", "-a", help="NAME=PATH: serve this run/adapter folder as "
                                      "model NAME too (repeatable); peft adapters on the same base share it"),
    host: str = typer.Option("127.0.0.1", help="address to listen on; anything beyond localhost needs a token"),
    port: int = typer.Option(8000, help="port to listen on"),
    token: Optional[str] = typer.Option(None, envvar=TOKEN_ENV, show_envvar=True,
                                        help="bearer token every route but /health requires"),
    no_log_prompts: bool = typer.Option(False, "--no-log-prompts", help="keep prompt text out of the request log"),
    db: Optional[str] = typer.Option(None, envvar="GRAFT_DB_URL", help="graft's database (jobs, request log): "
                                     "SQLAlchemy URL or SQLite file (default: graft.db in GRAFT_HOME)"),
    workers: int = typer.Option(1, help="jobs run at once by this server's own workers (0: only other workers)"),
    runs_root: Optional[str] = typer.Option(None, help="where jobs put run folders (default: GRAFT_HOME/runs)"),
    broker: Optional[str] = typer.Option(None, envvar="GRAFT_BROKER_URL", help="Celery broker (redis://...): "
                                         "jobs go to `graft worker` processes, none run here"),
) -> None:
    """The web app: the browser UI at /ui, jobs (/api/jobs), and MODEL (with --adapter NAME=PATH ...) behind an
    OpenAI-compatible API (/v1/chat/completions, /v1/models)."""
    import uvicorn

    from graft.cli.progress import RichProgress
    from graft.errors import ConfigError
    from graft.inference.pool import open_pool, parse_adapters
    from graft.server import ServerSettings, create_app
    from graft.server.security import check_bind

    settings = ServerSettings(host=host, port=port, token=token, log_prompts=not no_log_prompts, db=db,
                              workers=workers, runs_root=runs_root, broker_url=broker)
    check_bind(settings)  # before minutes of loading
    adapters = parse_adapters(adapter)
    if model is None and adapters:
        raise ConfigError("--adapter needs a MODEL to attach to", hint="graft serve BASE --adapter NAME=PATH")
    pool = None
    if model is not None:
        with RichProgress(out) as progress:
            pool = open_pool(model, adapters, progress)
        out.print(pool.describe(), highlight=False)
    served = ", ".join(m.id for m in pool.models()) if pool else f"{settings.default_model} (loaded at the first chat)"
    out.print(f"serving {served} at http://{host}:{port}/v1 (docs at /docs{', token required' if settings.token else ''})",
              highlight=False)
    uvicorn.run(create_app(pool, settings), host=host, port=port, log_level="info")
