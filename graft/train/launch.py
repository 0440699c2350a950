"""`graft train --nproc N`: one run as N processes a machine, started by torchrun (torch.distributed.run).

The launcher writes the resolved config to a file, so every process trains exactly the same run,
and starts torchrun over this module; each process runs the recipe's train() (graft/train/recipe.py)
with its rank from torchrun's environment. Rank 0 shows progress and writes the run folder. A
process that stops on a GraftError (a bad row, say) leaves it in a file for the launcher, which
raises it once: whichever rank fails first, torchrun ends the others, so no single rank can be
counted on to print it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from graft.config import RunConfig
from graft.errors import ConfigError, GraftError
from graft.train.run_folder import RunFolder


@dataclass(frozen=True)
class Launch:
    nproc: int = 1  # processes on this machine
    nnodes: int = 1  # machines
    node_rank: int = 0  # this machine's place among them
    master_addr: str | None = None  # node 0's address (several machines)
    master_port: int = 29500

    @property
    def processes(self) -> int:
        return self.nproc * self.nnodes

    def check(self) -> None:
        if self.nproc < 1 or self.nnodes < 1:
            raise ConfigError(f"--nproc and --nnodes must be at least 1 (got {self.nproc}, {self.nnodes})")
        if not 0 <= self.node_rank < self.nnodes:
            raise ConfigError(f"--node-rank must be in 0..{self.nnodes - 1} (got {self.node_rank})")
        if self.nnodes > 1 and not self.master_addr:
            raise ConfigError(f"--nnodes {self.nnodes} needs --master-addr: the address of node 0, which every "
                              "machine can reach")

    def torchrun_args(self) -> list[str]:
        args = ["--nproc-per-node", str(self.nproc), "--nnodes", str(self.nnodes)]
        if self.nnodes == 1 and not self.master_addr:
            return args + ["--standalone"]  # a free port on this machine
        return args + ["--node-rank", str(self.node_rank), "--master-addr", self.master_addr or "127.0.0.1",
                       "--master-port", str(self.master_port)]


def launch(cfg: RunConfig, how: Launch, resume_dir: str | Path | None = None) -> tuple[int, Path]:
    """Run `cfg` as `how` says; returns (torchrun's exit code, the run folder). A GraftError in this
    machine's processes is raised here (the lowest rank's)."""
    how.check()
    if resume_dir:
        run_dir = Path(resume_dir)
    else:
        # named now, so that the launcher knows the folder rank 0 will create
        run_dir = RunFolder.new_path(cfg)
        cfg = cfg.model_copy(update={"run_name": run_dir.name})
        if how.node_rank == 0:
            RunFolder.check_new(cfg)
    with tempfile.TemporaryDirectory(prefix="graft-launch-") as tmp:
        config = Path(tmp) / "config.yaml"
        cfg.save(config)
        argv = [*how.torchrun_args(), "-m", "graft.train.launch", str(config), "--errors", tmp]
        if resume_dir:
            argv += ["--resume", str(resume_dir)]
        code = _torchrun(argv, threads=max(1, (os.cpu_count() or 1) // how.nproc))
        if code != 0:
            _raise_first_error(Path(tmp))
        return code, run_dir


def _raise_first_error(folder: Path) -> None:
    """The GraftError a process of the run stopped on (lowest rank first): its message and hint, as
    the CLI shows them (its subclass is not rebuilt: their constructors differ)."""
    found = sorted(folder.glob("error-rank-*.json"), key=lambda f: int(f.stem.rpartition("-")[2]))
    if found:
        e = json.loads(found[0].read_text())
        raise GraftError(e["message"], e["hint"])


def _torchrun(argv: list[str], threads: int) -> int:
    """torchrun in this process; returns the first failed process's exit code (0: all succeeded).

    Run here rather than as a command so that a failure ends with the processes' own message (rank 0
    prints "error: ..."), not torchrun's report and traceback on top of it."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    quiet = logging.getLogger("torch.distributed.elastic")
    level, quiet.level = quiet.level, logging.CRITICAL
    # torchrun would set 1 thread a process (and say so); the recipe splits the cores itself
    ours = "OMP_NUM_THREADS" not in os.environ
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    try:
        run(get_args_parser().parse_args(argv))
        return 0
    except ChildFailedError as e:
        code = e.get_first_failure()[1].exitcode
        return code if code >= 0 else 128 - code  # killed by a signal: the shell's convention
    except SignalException:
        return 130
    finally:
        quiet.setLevel(level)
        if ours:
            os.environ.pop("OMP_NUM_THREADS", None)


def main(argv: list[str] | None = None) -> int:
    """One process of the run (torchrun starts this with RANK, WORLD_SIZE, ... set)."""
    from graft.cli import prepare_process

    prepare_process()  # as a graft command's process is: quiet libraries, no third-party bars
    from graft.progress import NullProgress
    from graft.train.parallel import World
    from graft.train.recipe import train

    parser = argparse.ArgumentParser(prog="python -m graft.train.launch")
    parser.add_argument("config")
    parser.add_argument("--resume")
    parser.add_argument("--errors", help="folder for the GraftError this process stops on (the launcher shows it)")
    args = parser.parse_args(argv)
    world = World.from_env()
    cfg = RunConfig.load(args.config)
    try:
        if world.main:
            from graft.cli.progress import RichProgress

            with RichProgress() as progress:
                train(cfg, progress, resume_dir=args.resume)
        else:
            train(cfg, NullProgress(), resume_dir=args.resume)
    except GraftError as e:
        if args.errors:
            # whole or not at all: torchrun may end this process at any moment once another has failed
            tmp = Path(args.errors) / f".error-rank-{world.rank}.json"
            tmp.write_text(json.dumps({"message": str(e), "hint": e.hint}))
            tmp.rename(tmp.with_name(tmp.name[1:]))
        elif world.main:
            from graft.cli import show_error

            show_error(e)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    code = main()
    # Straight out: the run is saved and closed, and the interpreter's teardown of torch.distributed's
    # and DeepSpeed's native objects has been seen to abort a finished process (SIGABRT) now and then.
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)
