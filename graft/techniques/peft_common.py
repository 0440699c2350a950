"""What every peft-backed technique shares: the task type, the trained head, the parameter count."""

from __future__ import annotations

from graft.techniques.technique import ApplyContext

TargetModules = str | list[str]


def task_type(kind: str):
    from peft import TaskType

    return {"causal-lm": TaskType.CAUSAL_LM, "classification": TaskType.SEQ_CLS, "seq2seq": TaskType.SEQ_2_SEQ_LM}[kind]


def wrap(model, config, ctx: ApplyContext):
    """get_peft_model with the task type set and the new task head trained and saved alongside."""
    from peft import get_peft_model

    config.task_type = task_type(ctx.kind)
    if ctx.head:
        config.modules_to_save = sorted(set(config.modules_to_save or []) | set(ctx.head))
    return get_peft_model(model, config)


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total), counted exactly as peft's print_trainable_parameters counts them."""
    if hasattr(model, "get_nb_trainable_parameters"):
        return model.get_nb_trainable_parameters()
    trainable = total = 0
    for p in model.parameters():
        n = p.numel()
        # bitsandbytes packs two 4-bit weights a byte; count the weights, not the bytes (as peft does)
        if p.__class__.__name__ == "Params4bit":
            n *= 2 * getattr(p, "element_size", lambda: 1)()
        total += n
        if p.requires_grad:
            trainable += n
    return trainable, total
