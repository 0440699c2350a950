"""What the prompt family (prompt tuning, prefix tuning, p-tuning) shares beyond peft_common.

peft saves a prompt method as the *output* of its prompt encoder (the final virtual-token
embeddings or KV prefix): enough to run it, not to train on. p-tuning's MLP/LSTM and prefix
tuning's projection are lost, and peft's own restore would load those outputs into the
encoder's input table. So checkpoints also keep every trainable tensor, and resume loads those.
"""

from __future__ import annotations

from pathlib import Path

from graft.errors import RunError

TRAINING_STATE = "prompt_training_state.safetensors"


def save(model, folder: Path) -> None:
    from safetensors.torch import save_file

    model.save_pretrained(folder)  # peft format: what inference loads
    trained = {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}
    save_file(trained, str(Path(folder) / TRAINING_STATE))


def restore(model, folder: Path) -> None:
    from safetensors.torch import load_file

    state = load_file(str(Path(folder) / TRAINING_STATE))
    wanted = {n for n, p in model.named_parameters() if p.requires_grad}
    if set(state) != wanted:  # a different encoder or head: resuming would silently train something else
        raise RunError(f"{folder}: the saved prompt encoder does not match this run's "
                       f"(missing {sorted(wanted - set(state))[:3]}, unexpected {sorted(set(state) - wanted)[:3]})")
    model.load_state_dict(state, strict=False)


def hidden_size(model) -> int:
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    return config.hidden_size
