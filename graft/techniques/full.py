"""Full fine-tuning: every parameter trains. Saved as a whole transformers model (safetensors), so
the trained folder loads anywhere transformers does; there is no adapter and nothing to merge.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import Field

from graft.errors import RunError
from graft.techniques.technique import ApplyContext, MemoryProfile, Settings, Technique

WEIGHTS = "model.safetensors"
INDEX = "model.safetensors.index.json"  # what save_pretrained writes instead for a model past 50 GB


class FullSettings(Settings):
    train_embeddings: bool = Field(True, description="False freezes the input token embeddings "
                                   "(and the output layer when it is tied to them)")


def apply(model, s: FullSettings, ctx: ApplyContext):
    for p in model.parameters():
        p.requires_grad_(True)
    if not s.train_embeddings:
        # a tied lm_head is the same Parameter, so it freezes with it
        model.get_input_embeddings().weight.requires_grad_(False)
    return model


def save(model, folder: Path) -> None:
    # transformers 5 writes safetensors only, and leaves out tied copies (they re-tie on load)
    model.save_pretrained(folder)


def restore(model, folder: Path) -> None:
    """Load the saved weights into `model` in place (its Parameters, ties and optimizer links stay)."""
    import torch
    from safetensors.torch import load_file

    folder = Path(folder)
    if (folder / INDEX).is_file():
        files = sorted(set(json.loads((folder / INDEX).read_text())["weight_map"].values()))
    elif (folder / WEIGHTS).is_file():
        files = [WEIGHTS]
    else:
        raise RunError(f"{folder} holds no {WEIGHTS} (nor {INDEX})")
    saved: dict[str, torch.Tensor] = {}
    for name in files:
        saved.update(load_file(folder / name))
    own = model.state_dict()
    tied = set(getattr(model, "all_tied_weights_keys", None) or {})  # the keys save_pretrained drops
    try:
        if set(saved) <= set(own) and set(own) - set(saved) <= tied:
            model.load_state_dict(saved, strict=False)  # copies into the existing tensors
            return
        # Some architectures keep their weights in another layout on disk than in memory (transformers
        # converts them while loading): let transformers read the folder, then copy in place.
        loaded = type(model).from_pretrained(folder, dtype=next(model.parameters()).dtype, use_safetensors=True)
        model.load_state_dict(loaded.state_dict())
    except RuntimeError as e:  # a shape that does not fit: another model's weights
        raise RunError(f"{folder} does not hold weights of this model: {e}") from None


def load(base, folder: Path, s: FullSettings):
    """The saved model, loaded into `base` in place (no second copy of the weights)."""
    restore(base, folder)
    return base


def memory(s: FullSettings) -> MemoryProfile:
    return MemoryProfile(trains_base=True)


technique = Technique(
    name="full",
    family="full",
    description="every parameter trains; saves the whole model (needs weights + gradients + AdamW state: ~16 bytes/param in fp32)",
    apply=apply,
    settings=FullSettings,
    kinds=frozenset({"causal-lm", "classification", "seq2seq"}),
    save=save,
    load=load,
    restore=restore,
    weights_file=WEIGHTS,
    memory=memory,
    mergeable=False,  # the saved model already is the merged model; evaluate must not call merge_adapter
)
