"""The baseline: LoRA the way the transformers + peft docs show it, nothing tuned.

`Trainer` with its defaults (AdamW, linear schedule, fp32 on CPU, no dataloader workers), examples
rendered with the model's chat template, loss on the response only (-100 on the prompt), and
`DataCollatorForSeq2Seq` padding each batch to its longest example. This is the script a user
writes before they reach for graft; benchmarks/speed_vs_baseline.py races graft against it.

    python benchmarks/baseline_trainer.py --model-dir DIR --data alpaca.json --rows 320 --save adapter/
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from datasets import Dataset
from peft import LoraConfig, get_peft_model
from transformers import (AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, Trainer,
                          TrainerCallback, TrainingArguments)


def messages(row: dict) -> list[dict]:
    prompt = f"{row['instruction']}\n\n{row['input']}" if row.get("input", "").strip() else row["instruction"]
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": row["output"]}]


def tokenize(row: dict, tokenizer, max_length: int) -> dict:
    chat = messages(row)
    prompt = tokenizer.apply_chat_template(chat[:1], add_generation_prompt=True, tokenize=False)
    full = tokenizer.apply_chat_template(chat, tokenize=False).rstrip()
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    ids = tokenizer(full, add_special_tokens=False)["input_ids"][:max_length]
    labels = [-100] * min(len(prompt_ids), len(ids)) + ids[len(prompt_ids):]
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}


class Clock(TrainerCallback):
    """Wall time of the training steps only, so loading is not counted against either side."""

    def on_train_begin(self, args, state, control, **kw):
        self.t0 = time.perf_counter()

    def on_train_end(self, args, state, control, **kw):
        self.seconds = time.perf_counter() - self.t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--rows", type=int, default=160)
    ap.add_argument("--batch-size", type=int, default=8)  # TrainingArguments' own default
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--save", required=True, help="folder for the trained adapter")
    args = ap.parse_args()

    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    model = AutoModelForCausalLM.from_pretrained(args.model_dir)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear",
                                             task_type="CAUSAL_LM"))
    rows = json.loads(Path(args.data).read_text())[: args.rows]
    train_set = Dataset.from_list(rows).map(lambda r: tokenize(r, tokenizer, args.max_length),
                                            remove_columns=list(rows[0].keys()))
    clock = Clock()
    trainer = Trainer(
        model=model,
        args=TrainingArguments(output_dir=args.save, per_device_train_batch_size=args.batch_size,
                               learning_rate=args.lr, num_train_epochs=1, logging_steps=1, save_strategy="no",
                               report_to=[], seed=42, use_cpu=not torch.cuda.is_available()),
        train_dataset=train_set,
        data_collator=DataCollatorForSeq2Seq(tokenizer, padding="longest"),
        callbacks=[clock],
    )
    result = trainer.train()
    model.save_pretrained(args.save)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    real = sum(len(x) for x in train_set["input_ids"])
    print(json.dumps({"train_s": clock.seconds, "steps": result.global_step, "real_tokens": real,
                      "losses": losses, "final_loss": losses[-1]}))


if __name__ == "__main__":
    main()
