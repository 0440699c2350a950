"""MeZO: restores θ exactly enough, estimates the directional derivative, learns, keeps no state."""

from __future__ import annotations

import copy

import pytest
import torch

from graft.data.batching import flatten
from graft.data.tokenize import Tokenized
from graft.train.loss import loss_sum
from graft.train.mezo import MeZO
from testkit import IDS, llama


@pytest.fixture(autouse=True)
def one_thread():
    # a model this small only pays synchronisation for a second thread (as the recipe tests' threads=1)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _closure(model):
    """The recipe's shape: forward only, summed target loss over the step's micro-batches / target count."""
    batches = [flatten([Tokenized(input_ids=r.tolist(), labels=r.tolist())]) for r in IDS[:, :8]]
    n = sum(len(b.targets) for b in batches)
    return lambda: sum(loss_sum(model, b) for b in batches) / n


def _z(opt: MeZO, step: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(opt.seed_for(step))
    return [torch.randn(p.shape, dtype=p.dtype, generator=gen) for g in opt.param_groups for p in g["params"]]


def test_lr_zero_restores_parameters():
    model = llama()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = MeZO(model.parameters(), lr=0.0, eps=1e-3, weight_decay=0.1, seed=3)
    opt.step(_closure(model))
    # θ + εz - 2εz + εz rounds at each add, so fp32 gives θ back within about an ulp of the larger of
    # θ and εz (about half the entries bit for bit): 1.2e-7 for the norm weights at 1.0, ~1e-10 near 0
    for n, p in model.named_parameters():
        torch.testing.assert_close(p, before[n], rtol=2.5e-7, atol=1e-9)
        assert p.grad is None
    assert max((p - before[n]).abs().max().item() for n, p in model.named_parameters()) <= 1.2e-7


def test_nonfinite_loss_restores_and_skips_the_update():
    w = torch.nn.Parameter(torch.ones(4, 3))
    opt = MeZO([w], lr=1.0, eps=1e-3)
    assert opt.step(lambda: float("nan")) != opt.step(lambda: float("nan"))  # nan: reported as it is
    torch.testing.assert_close(w.detach(), torch.ones(4, 3), rtol=0, atol=1e-6)


def test_projected_gradient_is_the_directional_derivative():
    model = llama()
    fn = _closure(model)
    opt = MeZO(model.parameters(), lr=0.0, eps=1e-4, seed=7)
    opt.step(fn)  # step 0, so that the one we check is not the first
    params = [p for g in opt.param_groups for p in g["params"]]

    # autograd's ∇L·z along the z that step 1 will draw
    loss = fn()
    grads = torch.autograd.grad(loss, params)
    z = _z(opt, 1)
    exact = sum((g * zi).sum() for g, zi in zip(grads, z)).item()
    scale = torch.sqrt(sum((g * g).sum() for g in grads)).item()  # ‖∇L‖, the spread of ∇L·z over z
    opt.step(fn)
    # off by fp32 roundoff in L± (~1e-7·L/ε) and the O(ε²) curvature term: < 5e-3 in 10 seeds (‖∇L‖ ≈ 12)
    assert opt.projected_grad == pytest.approx(exact, abs=2e-3 * scale)

    # and the central difference taken by hand on a copy, the same adds in the same order: equal
    twin = copy.deepcopy(model)
    with torch.no_grad():
        loss_at = []
        for sign in (1, -1):
            for p, zi in zip(twin.parameters(), _z(opt, 2)):
                p.add_(zi, alpha=sign * opt.eps * (2 if sign < 0 else 1))
            loss_at.append(_closure(twin)().item())
    opt.step(fn)
    assert opt.projected_grad == pytest.approx((loss_at[0] - loss_at[1]) / (2 * opt.eps), rel=1e-9)


def test_both_passes_see_the_same_random_numbers():
    """Dropout-like noise in the closure is common to L+ and L-, so g measures θ alone; the global
    RNG ends where one forward would have left it."""
    w = torch.nn.Parameter(torch.randn(5))
    target = torch.randn(5)
    fn = lambda: ((w - target) ** 2).sum().item() + torch.rand(()).item()  # noqa: E731
    opt = MeZO([w], lr=0.0, eps=1e-3, seed=1)
    (z,) = _z(opt, 0)
    exact = (2 * (w.detach() - target) * z).sum().item()
    torch.manual_seed(11)
    opt.step(fn)
    after = torch.rand(())
    torch.manual_seed(11)
    torch.rand(())
    assert torch.equal(torch.rand(()), after)
    assert opt.projected_grad == pytest.approx(exact, rel=1e-3, abs=1e-3)


def test_weight_decay_follows_the_groups():
    decay, plain = torch.nn.Parameter(torch.full((3, 3), 2.0)), torch.nn.Parameter(torch.full((3,), 2.0))
    opt = MeZO([{"params": [decay], "weight_decay": 0.5}, {"params": [plain], "weight_decay": 0.0}], lr=0.1)
    opt.step(lambda: 1.0)  # flat loss: g = 0, only decay moves θ
    assert opt.projected_grad == 0.0
    torch.testing.assert_close(decay.detach(), torch.full((3, 3), 2.0 * (1 - 0.1 * 0.5)))
    torch.testing.assert_close(plain.detach(), torch.full((3,), 2.0))


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_loss_falls(lora):
    model = llama()
    if lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0,
                                                 target_modules=["q_proj", "v_proj", "o_proj", "down_proj"]))
    fn = _closure(model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    opt = MeZO(trainable, lr=3e-3 if lora else 3e-4, eps=1e-3, seed=0)
    with torch.no_grad():
        start = fn().item()
    losses = [opt.step(fn) for _ in range(150)]
    with torch.no_grad():
        end = fn().item()
    assert end < 0.75 * start, (start, end)
    assert sum(losses[-10:]) < 0.75 * sum(losses[:10])
    # no grads, no per-parameter state, frozen weights untouched
    assert all(p.grad is None for p in model.parameters())
    assert opt.state_dict()["state"] == {} and not opt.state
    for n, p in model.named_parameters():
        if n in frozen:
            assert torch.equal(p, frozen[n])


def test_scheduler_and_resume():
    from transformers import get_scheduler

    def make(w):
        opt = MeZO([w], lr=0.1, eps=1e-3, seed=5)
        return opt, get_scheduler("linear", opt, num_warmup_steps=2, num_training_steps=10)

    target = torch.randn(4, 4, generator=torch.Generator().manual_seed(0))
    w = torch.nn.Parameter(torch.zeros(4, 4))
    opt, sched = make(w)
    fn = lambda: ((w - target) ** 2).sum()  # noqa: E731
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step(fn)
        sched.step()
    assert lrs[:3] == pytest.approx([0.0, 0.05, 0.1]) and lrs[3] < lrs[2]

    # resume at step 3 from state dicts: same lr, same z, so the same weights as the straight run
    w2 = torch.nn.Parameter(torch.zeros(4, 4))
    opt2, sched2 = make(w2)
    fn2 = lambda: ((w2 - target) ** 2).sum()  # noqa: E731
    for _ in range(3):
        opt2.step(fn2)
        sched2.step()
    saved = (copy.deepcopy(opt2.state_dict()), copy.deepcopy(sched2.state_dict()), w2.detach().clone())
    assert not any(isinstance(v, torch.Tensor) for v in saved[0]["mezo"].values()) and saved[0]["state"] == {}
    w3 = torch.nn.Parameter(saved[2])
    opt3, sched3 = make(w3)
    opt3.seed = 999  # overwritten by the checkpoint
    opt3.load_state_dict(saved[0])
    sched3.load_state_dict(saved[1])
    assert opt3.steps == 3 and opt3.seed == 5 and opt3.param_groups[0]["lr"] == pytest.approx(lrs[3])
    fn3 = lambda: ((w3 - target) ** 2).sum()  # noqa: E731
    for _ in range(3):
        opt3.step(fn3)
        sched3.step()
    torch.testing.assert_close(w3.detach(), w.detach(), rtol=0, atol=0)


@pytest.mark.parametrize("technique, lr", [("lora", 2e-3), ("full", 1e-3)])
def test_mezo_through_the_recipe_lowers_the_loss(technique, lr, tiny_model_dir, tiny_chat_data, tmp_path, make_config):
    """train.optimizer=mezo end to end: forward passes only, the loss falls, the run saves and resumes as any other."""
    from graft.train.recipe import train
    from graft.train.run_folder import RunFolder

    cfg = make_config(tiny_model_dir, tiny_chat_data, tmp_path / "runs", **{
        "technique": {"name": technique, **({"r": 8} if technique == "lora" else {})},
        "train.optimizer": "mezo", "train.lr": lr, "train.max_steps": 200, "train.mezo_eps": 1e-3})
    result = train(cfg)
    losses = [r["loss"] for r in RunFolder(result.run_dir).read_metrics() if r["type"] == "train"]
    # MeZO's per-step loss is noisy (one random direction, one batch): compare 50-step means
    first, last = sum(losses[:50]) / 50, sum(losses[-50:]) / 50
    assert last < 0.95 * first, (first, last)
    assert result.summary["status"] == "completed"
