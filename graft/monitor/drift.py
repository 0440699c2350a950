"""Drift: do the prompts a run serves still look like the prompts it was trained on?

The verdict rests on one test, MMD between MiniLM embeddings, so its p-value meets the threshold
as it is; the length and vocabulary tests say how the prompts differ. Anyone deciding on any of the
three should compare each with threshold / 3 (Bonferroni); the report lists those too.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path

from graft.errors import ConfigError
from graft.monitor.drift_chart import drift_spec
from graft.monitor.requests import RequestLog
from graft.monitor.sources import MIN_PROMPTS, served_keys, served_prompts, training_prompts
from graft.monitor.stats import length_test, mmd_test, vocabulary_test
from graft.progress import NullProgress, Progress
from graft.train.run_folder import RunFolder

EMBEDDER = "minilm-l6"
DEFAULT_PERMUTATIONS = 1000


def drift_report(run_dir: str | Path, log: RequestLog, model_id: str | None = None, threshold: float = 0.05,
                 max_rows: int = 2000, permutations: int = DEFAULT_PERMUTATIONS, seed: int = 0,
                 progress: Progress | None = None, since: datetime | None = None, embedder=None) -> dict:
    """Compare the run's served prompts with its training prompts; write monitor/drift-*.json and a
    chart (.vl.json, .svg, .png) into the run folder and return the report (see docs/monitor.md).

    `embedder` (a graft.models.embed.Embedder) saves reloading MiniLM when called repeatedly.
    """
    from graft.models.embed import Embedder

    if not 0 < threshold < 1:
        raise ConfigError(f"threshold must be between 0 and 1, got {threshold}")
    if max_rows < MIN_PROMPTS:
        raise ConfigError(f"max_rows must be at least {MIN_PROMPTS}, got {max_rows}")
    if permutations < 1:
        raise ConfigError(f"permutations must be at least 1, got {permutations}")
    progress = progress or NullProgress()
    folder = RunFolder.open(run_dir)
    clock = _Clock()

    # served first: it is cheap, and too few logged requests is the common failure
    served, served_total = served_prompts(folder.path, log, model_id, since, max_rows, seed)
    train, train_total = training_prompts(folder.path, max_rows, seed)
    clock.lap("load")
    progress.log(f"comparing {len(served)} served prompts with {len(train)} training prompts")
    embedder = embedder or Embedder(EMBEDDER)
    clock.lap("load_embedder")
    train_emb, served_emb = embedder.encode(train, progress), embedder.encode(served, progress)
    train_len, served_len = embedder.count_tokens(train), embedder.count_tokens(served)
    clock.lap("embed")
    tests = {"embedding": mmd_test(train_emb, served_emb, permutations, seed, progress)}
    clock.lap("mmd")
    tests["length"] = length_test(train_len, served_len)
    tests["vocabulary"] = vocabulary_test(train, served, permutations, seed)
    clock.lap("length_vocabulary")

    per_test = threshold / len(tests)
    for test in tests.values():
        test["fires"] = test["p_value"] < threshold
    drifted = tests["embedding"]["fires"]
    report = {
        "run": str(folder.path.resolve()),
        "served_by": {"model": model_id} if model_id else {"adapter": served_keys(folder.path)},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "embedder": EMBEDDER,
        "threshold": threshold,
        "counts": {"train": len(train), "served": len(served), "train_total": train_total,
                   "served_total": served_total},
        "tests": tests,
        "drifted": drifted,
        "verdict": verdict(drifted, tests["embedding"]["p_value"], threshold),
        "reasons": reasons(tests, threshold),
        "bonferroni": {"alpha_per_test": per_test,
                       "fires": [name for name, t in tests.items() if t["p_value"] < per_test]},
        "seed": seed,
    }
    spec = drift_spec(train_emb, served_emb, train, served, train_len, served_len,
                      title=f"{folder.path.name}: {report['verdict']}")
    out_dir = folder.monitor_dir
    report["files"] = _write_chart(out_dir, spec)
    clock.lap("chart")
    report["timings_s"] = {**clock.laps, "total": round(clock.total(), 3)}
    Path(report["files"]["json"]).write_text(json.dumps(report, indent=2) + "\n")
    return report


def fmt_p(p: float) -> str:
    """0.00099 -> 0.001, 0.0499 -> 0.0499: three digits near any usual threshold, so none rounds onto it."""
    return f"{p:.2g}" if p < 0.01 else f"{p:.3g}"


def verdict(drifted: bool, p: float, threshold: float) -> str:
    if drifted:
        return f"drift detected: served prompts differ from the training data (MMD p={fmt_p(p)} < {threshold:g})"
    return f"no drift: served prompts are consistent with the training data (MMD p={fmt_p(p)} >= {threshold:g})"


def reasons(tests: dict, threshold: float) -> list[str]:
    """One sentence per test that fires, saying how the served prompts differ."""
    out = []
    e, n, v = tests["embedding"], tests["length"], tests["vocabulary"]
    if e["fires"]:
        out.append(f"embedding: the served prompts mean different things from the training prompts "
                   f"(MMD²={e['value']:.4f}, p={fmt_p(e['p_value'])} < {threshold:g})")
    if n["fires"]:
        way = ("longer" if n["served_median"] > n["train_median"] else
               "shorter" if n["served_median"] < n["train_median"] else "differently spread in length")
        out.append(f"length: the served prompts are {way} (median {n['served_median']:g} vs {n['train_median']:g} "
                   f"tokens; KS D={n['value']:.3f}, p={fmt_p(n['p_value'])} < {threshold:g})")
    if v["fires"]:
        out.append(f"vocabulary: {v['oov_rate']:.0%} of served words never occur in the training prompts "
                   f"({v['baseline_oov_rate']:.0%} for training prompts themselves); word distributions "
                   f"JS divergence {v['value']:.3f}, p={fmt_p(v['p_value'])} < {threshold:g}")
    return out


def _write_chart(out_dir: Path, spec: dict) -> dict[str, str]:
    """Write the spec and its renderings; returns every file's path, the report's (written last) included."""
    from graft.charts import render, renderers

    out_dir.mkdir(parents=True, exist_ok=True)
    stem = _free_stem(out_dir, "drift-" + time.strftime("%Y%m%d-%H%M%S"))
    files = {"json": out_dir / f"{stem}.json", "spec": out_dir / f"{stem}.vl.json"}
    files["spec"].write_text(json.dumps(spec) + "\n")
    for fmt, renderer in renderers().items():
        files[fmt] = render(spec, out_dir / f"{stem}.{fmt}", renderer)
    return {k: str(p) for k, p in files.items()}


def _free_stem(folder: Path, stem: str) -> str:
    """`stem`, or stem-2, stem-3, ... when two reports land in the same second."""
    candidate, n = stem, 1
    while (folder / f"{candidate}.vl.json").exists():  # the spec is written first
        n += 1
        candidate = f"{stem}-{n}"
    return candidate


class _Clock:
    def __init__(self) -> None:
        self.start = self.last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self.last, 3)
        self.last = now

    def total(self) -> float:
        return time.perf_counter() - self.start
