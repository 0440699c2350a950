"""The `graft` command line: a thin layer over the Python API."""

from __future__ import annotations

import os
import sys


def main() -> None:
    prepare_process()
    from graft.cli.app import app
    from graft.errors import GraftError

    try:
        app()  # Typer/click render usage errors themselves (exit 2)
    except GraftError as e:
        show_error(e)
        sys.exit(2)


def prepare_process() -> None:
    """What every graft command's process starts with (the CLI's, and each process of `--nproc`)."""
    # graft draws its own bars; libraries that call tqdm directly (transformers' GGUF loader) stay quiet.
    # tqdm reads this when it is imported, so it is set before anything imports it.
    os.environ.setdefault("TQDM_DISABLE", "1")
    _quiet_libraries()


def show_error(e) -> None:
    """A GraftError as the user sees it: the message and its hint, no traceback."""
    from rich.console import Console

    err = Console(stderr=True)
    err.print(f"[bold red]error:[/bold red] {e}", highlight=False)
    if e.hint:
        err.print(f"[yellow]hint:[/yellow] {e.hint}", highlight=False)

def _quiet_libraries() -> None:
    """graft draws its own progress; the libraries' bars and deprecation chatter would interleave."""
    import logging
    import warnings

    from transformers.utils import logging as hf_logging

    # bitsandbytes (imported by peft when installed) warns at import about optional CPU kernels
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    warnings.filterwarnings("ignore", category=FutureWarning)
