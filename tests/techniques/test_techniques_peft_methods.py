"""The peft-backed methods beyond plain LoRA (dora, adalora, ia3, loha, lokr, vera), checked by what
they do to a tiny random model: which parameters train and how many, their initial no-op, merging,
AdaLoRA's shrinking rank budget, penalty and resume, and classification heads."""

from __future__ import annotations

import warnings

import pytest
import torch
from pydantic import ValidationError

from graft.errors import ConfigError
from graft.techniques import ApplyContext, count_parameters, get_technique
from testkit import IDS, LAYERS, LINEARS, bert, llama

METHODS = ("dora", "adalora", "ia3", "loha", "lokr", "vera")
SMALL = {"dora": {"r": 4}, "adalora": {"init_r": 6, "target_r": 2}, "ia3": {}, "loha": {"r": 4},
         "lokr": {"r": 4}, "vera": {"r": 16}}


def applied(name, options=None, model=None, **ctx):
    tech = get_technique(name)
    settings = tech.parse(options if options is not None else SMALL[name])
    return tech.apply(model if model is not None else llama(), settings, ApplyContext(**ctx))


def trainable(model) -> dict[str, torch.nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def logits(model, ids=IDS):
    with torch.no_grad():
        return model(input_ids=ids).logits


# -- options ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, options", [
    ("dora", {"r": 0}), ("dora", {"rank": 4}),
    ("adalora", {"init_r": 4, "target_r": 8}), ("adalora", {"beta1": 1.0}), ("adalora", {"delta_t": 0}),
    ("adalora", {"orth_reg_weight": -0.1}), ("adalora", {"tinit": -1}),
    ("ia3", {"target_modules": []}), ("ia3", {"feedforward_modules": 3}), ("ia3", {"r": 4}),
    ("loha", {"rank_dropout": 1.0}), ("loha", {"alpha": 0}), ("loha", {"r": 0}),
    ("lokr", {"decompose_factor": 0}), ("lokr", {"module_dropout": -0.1}), ("lokr", {"decompose_both": "sometimes"}),
    ("vera", {"r": 0}), ("vera", {"d_initial": 0}), ("vera", {"dropout": 1.0}), ("vera", {"projection_prng_key": -1}),
])
def test_options_reject_bad_values(name, options):
    with pytest.raises(ValidationError):
        get_technique(name).parse(options)


def test_a_bad_option_in_a_run_config_is_a_config_error(make_config, tmp_path):
    with pytest.raises(ConfigError, match="target_r"):
        make_config(tmp_path, tmp_path / "data.json", tmp_path / "runs",
                    **{"technique": {"name": "adalora", "init_r": 4, "target_r": 8}})


@pytest.mark.parametrize("name", METHODS)
def test_registered_with_the_kinds_checked_here(name):
    tech = get_technique(name)
    assert tech.name == name and tech.mergeable
    assert tech.supports("causal-lm") and tech.supports("classification") and not tech.supports("seq2seq")


# -- LoRA's rslora and DoRA -----------------------------------------------------------------------

@pytest.mark.parametrize("rslora, scale", [(False, 8 / 4), (True, 8 / 4 ** 0.5)])
def test_rslora_scales_by_alpha_over_sqrt_r(rslora, scale):
    model = applied("lora", {"r": 4, "alpha": 8, "rslora": rslora})
    scalings = [m.scaling["default"] for m in model.modules() if isinstance(getattr(m, "scaling", None), dict)]
    assert len(scalings) == LAYERS * len(LINEARS)
    assert all(s == pytest.approx(scale) for s in scalings)


def test_dora_trains_a_magnitude_per_output_channel_and_starts_as_the_base():
    base = logits(llama())
    model = applied("dora")
    magnitudes = {n: p for n, p in trainable(model).items() if "lora_magnitude_vector" in n}
    assert len(magnitudes) == LAYERS * len(LINEARS)
    assert sum(p.numel() for p in magnitudes.values()) == LAYERS * sum(out for _, out in LINEARS.values())
    lora_only = LAYERS * sum(4 * (i + o) for i, o in LINEARS.values())
    assert count_parameters(model)[0] == lora_only + LAYERS * sum(out for _, out in LINEARS.values())
    assert torch.allclose(logits(model), base, atol=1e-5)
    assert get_technique("dora").memory(get_technique("dora").parse({})).activation_factor > 1


# -- AdaLoRA ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("steps", [1, 2, 16, 1000])
def test_adalora_default_schedule_leaves_a_budgeting_phase(steps):
    config = applied("adalora", total_steps=steps).peft_config["default"]
    assert config.total_step == steps and config.tinit + config.tfinal < steps and config.deltaT >= 1


def test_adalora_explicit_schedule_too_long_for_the_run_names_the_options():
    with pytest.raises(ConfigError, match="tinit.*tfinal"):
        applied("adalora", {"tinit": 5, "tfinal": 5}, total_steps=10)


def _train(model, steps, first=1, on_step=None):
    """A few optimizer steps of next-token loss, calling the technique's hook after each as the trainer does."""
    tech = get_technique("adalora")
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    for step in range(first, first + steps):
        ids = torch.randint(0, 97, (4, 16), generator=torch.Generator().manual_seed(step))
        out = model(input_ids=ids)
        loss = torch.nn.functional.cross_entropy(out.logits[:, :-1].reshape(-1, 97), ids[:, 1:].reshape(-1))
        (loss + tech.regularizer(model)).backward()
        opt.step()
        tech.on_step(model, step)
        if on_step:
            on_step(step)
        opt.zero_grad(set_to_none=True)
    return model.eval()


def _kept_ranks(model) -> int:
    return sum(int((m.lora_E["default"] != 0).sum()) for m in model.modules() if hasattr(m, "lora_E"))


def test_adalora_rank_budget_shrinks_to_the_target():
    n_layers = LAYERS * len(LINEARS)
    model = applied("adalora", {"init_r": 6, "target_r": 2, "tinit": 2, "tfinal": 3, "delta_t": 1}, total_steps=12)
    seen = {}
    _train(model, 12, on_step=lambda step: seen.setdefault(step, _kept_ranks(model)))
    assert seen[2] == 6 * n_layers  # warm-up: full rank (E moved off its zero start)
    assert 2 * n_layers < seen[5] < 6 * n_layers  # pruning under way
    assert seen[9] == seen[12] == 2 * n_layers  # final budget, held to the end
    pattern = model.peft_config["default"].rank_pattern
    assert sum(sum(kept) for kept in pattern.values()) == 2 * n_layers


def test_adalora_one_step_run_keeps_full_rank():
    model = _train(applied("adalora", total_steps=1), 1)
    assert _kept_ranks(model) == 6 * LAYERS * len(LINEARS)


def test_adalora_orthogonality_penalty():
    reg = get_technique("adalora").regularizer
    model = applied("adalora")
    penalty = reg(model)
    assert penalty.ndim == 0 and penalty.item() > 0 and penalty.requires_grad
    penalty.backward()
    grads = [p.grad for n, p in model.named_parameters() if "lora_A" in n or "lora_B" in n]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)

    # twice the weight, twice the penalty; orthonormal factors, no penalty
    doubled = reg(applied("adalora", {**SMALL["adalora"], "orth_reg_weight": 1.0}))
    assert doubled.item() == pytest.approx(2 * penalty.item(), rel=1e-5)
    with torch.no_grad():
        for m in model.modules():
            if hasattr(m, "lora_E"):
                a, b = m.lora_A["default"], m.lora_B["default"]
                a.copy_(torch.linalg.qr(torch.randn(a.shape[1], a.shape[0]))[0].T)
                b.copy_(torch.linalg.qr(torch.randn(*b.shape))[0])
    assert reg(model).item() < 1e-8


def test_adalora_checkpoint_restores_into_a_fresh_run_and_training_goes_on(tmp_path):
    tech = get_technique("adalora")
    options = {"init_r": 6, "target_r": 2, "tinit": 1, "tfinal": 3, "delta_t": 1}
    model = _train(applied("adalora", options, total_steps=10), 8)  # past the final allocation (step 7)
    tech.save(model, tmp_path)
    fresh = applied("adalora", options, total_steps=10)
    shapes = {n: p.shape for n, p in fresh.named_parameters()}
    tech.restore(fresh, tmp_path)
    assert {n: p.shape for n, p in fresh.named_parameters()} == shapes  # the optimizer's tensors, full rank
    assert torch.allclose(logits(fresh.eval()), logits(model), atol=1e-5)
    _train(fresh, 2, first=9)  # final phase: masks with the restored pattern
    assert _kept_ranks(fresh) == 2 * LAYERS * len(LINEARS)

    # and the saved ranks (some layers pruned to none) load for inference, without peft's false alarms
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        warnings.simplefilter("error", UserWarning)
        tech.save(fresh, tmp_path / "final")
        loaded = tech.load(llama(), tmp_path / "final", tech.parse(options))
    assert torch.allclose(logits(loaded.eval()), logits(fresh), atol=1e-5)


# -- IA3, VeRA, LoHa, LoKr --------------------------------------------------------------------------

def test_ia3_trains_one_scale_per_rescaled_channel():
    base = logits(llama())
    model = applied("ia3")  # peft's Llama default: k, v outputs and down_proj's (feed-forward) input
    expected = LAYERS * (LINEARS["k_proj"][1] + LINEARS["v_proj"][1] + LINEARS["down_proj"][0])
    assert count_parameters(model)[0] == expected
    assert all("ia3_l" in n for n in trainable(model))
    assert torch.allclose(logits(model), base, atol=1e-6)  # vectors start at one

    own = applied("ia3", {"target_modules": ["q_proj", "down_proj"]})  # down_proj stays feed-forward
    assert count_parameters(own)[0] == LAYERS * (LINEARS["q_proj"][1] + LINEARS["down_proj"][0])
    as_output = applied("ia3", {"target_modules": ["q_proj", "down_proj"], "feedforward_modules": []})
    assert count_parameters(as_output)[0] == LAYERS * (LINEARS["q_proj"][1] + LINEARS["down_proj"][1])


def test_ia3_needs_target_modules_where_peft_has_no_default():
    model = llama()
    model.config.model_type = "mystery"
    with pytest.raises(ConfigError, match="target_modules"):
        applied("ia3", model=model)
    with pytest.raises(ConfigError, match="feedforward_modules"):
        applied("ia3", {"target_modules": ["q_proj"], "feedforward_modules": ["down_proj"]})


def test_vera_trains_only_two_small_vectors_per_layer(tmp_path):
    from safetensors.torch import load_file

    model = applied("vera")
    params = trainable(model)
    assert params and all("vera_lambda_b" in n or "vera_lambda_d" in n for n in params)
    assert count_parameters(model)[0] == LAYERS * sum(16 + out for _, out in LINEARS.values())
    get_technique("vera").save(model, tmp_path)
    assert any("vera_A" in k for k in load_file(tmp_path / "adapter_model.safetensors"))  # save_projection


@pytest.mark.parametrize("name, factors", [
    ("loha", {"hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b"}),
    # LoKr factors its larger Kronecker matrix only where the rank is small beside it
    ("lokr", {"lokr_w1", "lokr_w2_a", "lokr_w2_b", "lokr_w2"}),
])
def test_loha_and_lokr_train_their_factors_and_start_as_the_base(name, factors):
    base = logits(llama())
    model = applied(name)
    names = {n.split(".")[-2] for n in trainable(model)}
    assert names <= factors and len(names) >= 3
    layers = {n.rsplit(".", 2)[0] for n in trainable(model)}
    assert len(layers) == LAYERS * len(LINEARS)
    assert torch.allclose(logits(model), base, atol=1e-6)


def test_lokr_decompose_both_factors_the_small_matrix_too():
    model = applied("lokr", {"r": 2, "decompose_both": True, "decompose_factor": 8})
    assert {n.split(".")[-2] for n in trainable(model)} >= {"lokr_w1_a", "lokr_w1_b"}


# -- every method: merging and classification ---------------------------------------------------

@pytest.mark.parametrize("name", METHODS)
def test_merges_into_the_base_weights(name):
    model = applied(name, total_steps=10)
    with torch.no_grad():
        for p in trainable(model).values():
            p.add_(torch.randn_like(p) * 0.05)
    before = logits(model)
    assert not torch.allclose(before, logits(llama()), atol=1e-4)
    merged = model.merge_and_unload()
    assert not any("lora" in n or "ia3" in n or "hada" in n or "lokr" in n or "vera" in n
                   for n, _ in merged.named_parameters())
    assert torch.allclose(logits(merged), before, atol=1e-4)


@pytest.mark.parametrize("name", METHODS)
def test_classification_trains_the_new_head(name):
    from graft.techniques.saved import head_modules

    model = bert()
    assert head_modules(model) == ("classifier",)
    model = applied(name, model=model, kind="classification", head=("classifier",), total_steps=10)
    params = trainable(model)
    head = {n for n in params if ".classifier." in n}
    assert head and any(n not in head for n in params)
    out = model(input_ids=IDS, labels=torch.tensor([0, 2]))
    assert out.logits.shape == (2, 3)
    out.loss.backward()
    assert all(params[n].grad is not None for n in head)
