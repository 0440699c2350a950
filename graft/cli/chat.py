"""`graft chat`: talk to a tuned model (streaming), or ask one question with --prompt.

With --adapter NAME=PATH, several adapters share TARGET's base and `/use NAME` switches between
them (and the base) mid-conversation.
"""

from __future__ import annotations

from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

out = Console()


def chat(
    target: str = typer.Argument(..., help="run folder, adapter folder, or model"),
    prompt: Optional[str] = typer.Option(None, "--prompt", "-p", help="ask once, print the answer, exit"),
    system: Optional[str] = typer.Option(None, help="system prompt"),
    max_new_tokens: int = typer.Option(256, help="longest reply in tokens"),
    temperature: float = typer.Option(0.0, help="0 = greedy"),
    adapter: list[str] = typer.Option([], "--adapter", "-a", help="NAME=PATH: load this run/adapter folder too, on "
                                      "TARGET's base (repeatable); /use NAME switches"),
) -> None:
    """Chat with a run or model; /reset starts over, /models and /use NAME switch adapters, /exit or Ctrl-D leaves."""
    from graft.inference import load_for_inference, stream_reply
    from graft.inference.pool import open_pool, parse_adapters

    history = [{"role": "system", "content": system}] if system else []
    if adapter:
        pool = open_pool(target, parse_adapters(adapter))
        current, names = [pool.default], [m.id for m in pool.models()]
        intro = f"{pool.describe()}\nchatting with {pool.default}"

        def speak():
            return pool.stream(current[0], history, max_new_tokens, temperature)
    else:
        loaded = load_for_inference(target, merge=True).generative()
        current, names = [target], [target]
        intro = f"chatting with {target}{' (adapter on ' + loaded.base + ')' if loaded.has_adapter else ''}"

        def speak():
            return stream_reply(loaded.model, loaded.tokenizer, history, max_new_tokens, temperature)

    def reply(text: str) -> None:
        history.append({"role": "user", "content": text})
        pieces = []
        for piece in speak():
            pieces.append(piece)
            print(piece, end="", flush=True)
        print()
        history.append({"role": "assistant", "content": "".join(pieces).strip()})

    if prompt is not None:
        reply(prompt)
        return
    out.print(f"[dim]{escape(intro)}; /reset clears the conversation, /models lists, /use NAME switches, /exit leaves[/dim]",
              highlight=False)
    while True:
        try:
            text = input("> ").strip()
        except EOFError:
            print()
            return
        if text in {"/exit", "/quit"}:
            return
        if text == "/reset":
            del history[1 if system else 0 :]
        elif text == "/models":
            out.print(escape("\n".join(f"{'*' if n == current[0] else ' '} {n}" for n in names)), highlight=False)
        elif text.startswith("/use"):
            name = text.removeprefix("/use").strip()
            if not adapter:
                out.print("[yellow]one model loaded: start with --adapter NAME=PATH to switch[/yellow]")
            elif name in names:
                current[0] = name
                out.print(f"[dim]now {escape(name)}; the conversation goes on[/dim]", highlight=False)
            else:
                out.print(f"[yellow]no model '{escape(name)}'; known: {escape(', '.join(names))}[/yellow]", highlight=False)
        elif text:
            reply(text)
