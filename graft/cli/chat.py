"""`graft chat`: talk to a tuned model (streaming), or ask one question with --prompt."""

from __future__ import annotations

from typing import Optional

import typer
from rich.console import Console

out = Console()


def chat(
    target: str = typer.Argument(..., help="run folder, adapter folder, or model"),
    prompt: Optional[str] = typer.Option(None, "--prompt", "-p", help="ask once, print the answer, exit"),
    system: Optional[str] = typer.Option(None, help="system prompt"),
    max_new_tokens: int = typer.Option(256, help="longest reply in tokens"),
    temperature: float = typer.Option(0.0, help="0 = greedy"),
) -> None:
    """Chat with a run or model; type /reset to start over, /exit or Ctrl-D to leave."""
    from graft.inference import load_for_inference, stream_reply

    loaded = load_for_inference(target, merge=True).generative()
    history = [{"role": "system", "content": system}] if system else []

    def reply(text: str) -> None:
        history.append({"role": "user", "content": text})
        pieces = []
        for piece in stream_reply(loaded.model, loaded.tokenizer, history, max_new_tokens, temperature):
            pieces.append(piece)
            print(piece, end="", flush=True)
        print()
        history.append({"role": "assistant", "content": "".join(pieces).strip()})

    if prompt is not None:
        reply(prompt)
        return
    out.print(f"[dim]chatting with {target}{' (adapter on ' + loaded.base + ')' if loaded.has_adapter else ''}; "
              "/reset clears the conversation, /exit leaves[/dim]")
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
            continue
        if text:
            reply(text)
