"""`graft techniques list|show|compare`."""

from __future__ import annotations

import json
from typing import Optional

import typer
from rich.console import Console
from rich.table import Column, Table

app = typer.Typer(help="Fine-tuning techniques: what exists, what runs here, what each one trains.", no_args_is_help=True)
out = Console()


@app.command("list")
def list_techniques(as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table")) -> None:
    """Every registered technique (graft's and plugins'), and whether it runs on this machine."""
    from graft.techniques import available, broken

    rows = []
    for t in available().values():
        missing = t.missing()
        rows.append({
            "name": t.name, "family": t.family, "kinds": sorted(t.kinds),
            "requires": [r.what for r in t.requires], "available": not missing,
            "missing": missing, "source": t.source, "description": t.description,
        })
    for name, why in broken().items():
        rows.append({"name": name, "family": "?", "kinds": [], "requires": [], "available": False,
                     "missing": [], "broken": why, "source": "", "description": ""})
    if as_json:
        out.print_json(json.dumps(rows))
        return
    plugins = any(r["source"] not in ("graft", "") for r in rows)
    table = Table(Column("name", no_wrap=True), Column("family", no_wrap=True), Column("model kinds", no_wrap=True),
                  "requires", "available here", *(["from"] if plugins else []), Column("what it does", max_width=48),
                  caption="kinds: lm = causal LM, cls = sequence classification, s2s = seq2seq; "
                          "`graft techniques show NAME` for options")
    for r in rows:
        here = ("[green]yes[/green]" if r["available"] else
                f"[red]no[/red]: failed to load ({r['broken']})" if "broken" in r else
                "[red]no[/red]: needs " + ", ".join(r["missing"]))
        kinds = ", ".join(_SHORT.get(k, k) for k in r["kinds"])
        table.add_row(r["name"], r["family"], kinds, ", ".join(r["requires"]) or "-", here,
                      *([r["source"]] if plugins else []), r["description"])
    out.print(table)


_SHORT = {"causal-lm": "lm", "classification": "cls", "seq2seq": "s2s"}


@app.command("show")
def show(name: str = typer.Argument(..., help="technique name")) -> None:
    """A technique's options with their defaults, types and meaning (set them with -o KEY=VALUE)."""
    from graft.techniques import get_technique

    t = get_technique(name)
    out.print(f"[bold]{t.name}[/bold] ({t.family}): {t.description}", highlight=False)
    out.print(f"model kinds: {', '.join(sorted(t.kinds))}; mergeable: {'yes' if t.mergeable else 'no'}; "
              f"packs sequences: {'yes' if t.packs_sequences else 'no'}", highlight=False)
    if t.requires:
        out.print("requires: " + ", ".join(r.what for r in t.requires) + ("" if not t.missing() else
                  f" [red](missing here: {', '.join(t.missing())})[/red]"), highlight=False)
    table = Table(Column("option", no_wrap=True), "default", "type", "meaning")
    for field_name, field in t.settings.model_fields.items():
        default = "required" if field.is_required() else json.dumps(field.default)
        table.add_row(field_name, default, _type_name(field.annotation), field.description or "")
    out.print(table if t.settings.model_fields else "no options")


@app.command("compare")
def compare(
    model: str = typer.Option("smollm2-135m-instruct", help="catalog name, folder, .gguf file or Hub id"),
    techniques: Optional[str] = typer.Option(None, help="comma-separated names (default: every available one)"),
    task: str = typer.Option("auto", help="causal-lm | classification | seq2seq (auto: from the model)"),
    option: list[str] = typer.Option([], "--option", "-o", help="NAME.KEY=VALUE for one technique, e.g. -o lora.r=16"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
) -> None:
    """Trainable parameters of each technique on one model, counted as peft counts them (no weights loaded)."""
    from graft.config import parse_set_option
    from graft.errors import ConfigError, GraftError
    from graft.models import model_task, resolve
    from graft.models.load import ensure_folder
    from graft.techniques import available
    from graft.techniques.counting import count_trainable

    folder = ensure_folder(resolve(model))
    kind = task if task != "auto" else ("classification" if model_task(folder) == "encoder" else "causal-lm")
    names = [n.strip() for n in techniques.split(",") if n.strip()] if techniques else list(available())
    options: dict[str, dict] = {}
    for item in option:
        key, value = parse_set_option(item, "--option", "lora.r=16")
        name, _, opt = key.partition(".")
        if not opt:
            raise ConfigError(f"-o {item!r}: expected TECHNIQUE.OPTION=VALUE, e.g. lora.r=16")
        options.setdefault(name, {})[opt] = value
    rows = []
    for name in names:
        try:
            rows.append(count_trainable(folder, name, options.get(name), kind))
        except GraftError:
            raise
        except Exception as e:  # one technique that cannot apply to this architecture is a row, not a crash
            rows.append({"technique": name, "error": f"{type(e).__name__}: {e}"})
    if as_json:
        out.print_json(json.dumps({"model": model, "task": kind, "rows": rows}))
        return
    table = Table(Column("technique", no_wrap=True), Column("trainable", justify="right"),
                  Column("all params", justify="right"), Column("trainable %", justify="right"),
                  title=f"{model} ({kind})")
    for r in rows:
        if "error" in r:
            table.add_row(r["technique"], "-", "-", f"[red]{r['error'][:80]}[/red]")
        else:
            table.add_row(r["technique"], f"{r['trainable']:,}", f"{r['total']:,}", f"{r['percent']:.4f}")
    out.print(table)


def _type_name(annotation) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
