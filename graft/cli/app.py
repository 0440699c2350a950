"""The Typer application: one sub-command per module."""

from __future__ import annotations

import typer

from graft.cli import benchmark, chat, data, distributed, estimate, evaluate, export, models, monitor, quickstart, rag, serve, techniques, train, tune, worker

app = typer.Typer(
    name="graft",
    help="Graft a pretrained language model onto your domain: fine-tune, measure, chat.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(models.app, name="models")
app.add_typer(data.app, name="data")
app.add_typer(techniques.app, name="techniques")
app.add_typer(distributed.app, name="distributed")
app.add_typer(benchmark.app, name="benchmark")
app.add_typer(monitor.app, name="monitor")
app.add_typer(rag.app, name="rag")
app.command("train")(train.train)
app.command("tune")(tune.tune)
app.command("eval")(evaluate.eval_command)
app.command("chat")(chat.chat)
app.command("quickstart")(quickstart.quickstart)
app.command("estimate")(estimate.estimate)
app.command("export")(export.export_command)
app.command("serve")(serve.serve)
app.command("worker")(worker.worker)
