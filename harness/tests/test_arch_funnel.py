"""The causal Funnel Transformer (not yet a registry name: tested by its import path)."""

import math

import pytest
import torch

from harness.errors import UserError
from harness.models import ModelConfig, build_model, model_counts, shape_for_n
from harness.models.funnel import causal_pool, causal_upsample, stage_lengths
from harness.tests.arch_checks import check_causal, check_counts, check_shape_policy, check_trains

NAME = "funnel"
TINY = {"n_layer": 1, "d_model": 32, "n_head": 2, "n_ctx": 16, "vocab_size": 97}
VARIANTS = [
    {},
    {"n_stage": 3, "decoder_layers": 2},
    {"n_stage": 2, "pool": 3, "bias": False, "tie_weights": True},  # 16 // 3 = 5 groups, one token dropped
    {"n_stage": 1},  # no pooling: a plain GPT with a learned-position input
]


@pytest.mark.parametrize("extra", VARIANTS)
def test_trains(extra):
    check_trains(NAME, **{**TINY, **extra})


@pytest.mark.parametrize("extra", VARIANTS)
def test_causal(extra):
    for t in (1, 3, 4, 7, 9, 15):  # around the group boundaries of strides 2, 3 and 4
        check_causal(NAME, t=t, **{**TINY, **extra})


# measure.py warns when it sees under 2 FLOPs per weight per token: the pooled blocks run on 1 / pool of the
# positions, so a funnel legitimately does (what the model is for); the counts themselves are checked exactly
@pytest.mark.filterwarnings("ignore:Funnel. the FLOP counter saw")
@pytest.mark.parametrize("extra", VARIANTS)
def test_counts_match_module_and_flop_counter(extra):
    check_counts(NAME, **{**TINY, **extra})


def test_shape_policy():
    check_shape_policy(NAME)


def test_counts_by_hand():
    # n_layer 1 per stage, 2 stages (lengths 16, 8), 1 decoder block: 3 blocks; d=32, H=2, T=16, V=97
    c = model_counts(ModelConfig.make(NAME, **TINY))
    assert c.n_kaplan == 3 * 12 * 32**2 == 36864
    # per block biases 3d + d + 4d + d = 288, LayerNorms 2 * 2d = 128; final LayerNorm 64
    assert c.n_non_embedding == 36864 + 3 * (288 + 128) + 64 == 38176
    assert c.n_total == 38176 + 97 * 32 + 16 * 32 + 97 * 32 == 44896
    # Kaplan: full blocks at T=16: 6*12288 + 6*16*32 = 76800 each; the pooled one runs on half the positions at
    # length 8: (8 / 16) (6*12288 + 6*8*32) = 37632
    assert c.flops_per_token_kaplan == 2 * 76800 + 37632
    # Hoffmann per block at length t: 2*3d^2 + 4 t d + 3 H t + 2 d^2 + 16 d^2 = 24576 + 128 t + 6 t, scaled by t / 16
    full, pooled = 24576 + 134 * 16, (24576 + 134 * 8) / 2
    assert c.flops_per_token_hoffmann == 3 * (2 * 97 * 32 * 2 + 2 * full + pooled)


def test_pool_and_upsample_read_only_the_past():
    assert stage_lengths(16, 2, 3) == [16, 8, 4] and stage_lengths(16, 3, 3) == [16, 5, 1]
    x = torch.arange(7.0).view(1, 7, 1)
    assert causal_pool(x, 2).flatten().tolist() == [0.5, 2.5, 4.5]  # the incomplete group (token 6) dropped
    z = torch.tensor([10.0, 20.0, 30.0]).view(1, 3, 1)  # groups ending at tokens 1, 3, 5 (stride 2)
    assert causal_upsample(z, 2, 7).flatten().tolist() == [0, 10, 10, 20, 20, 30, 30]
    z = torch.tensor([10.0]).view(1, 1, 1)  # stride 4: the group ends at token 3
    assert causal_upsample(z, 4, 6).flatten().tolist() == [0, 0, 0, 10, 10, 10]


def test_prefix_consistent_and_short_sequences():
    torch.manual_seed(0)
    model = build_model(ModelConfig.make(NAME, **TINY, n_stage=3)).eval()  # stride 4
    x = torch.randint(0, 97, (2, 16))
    with torch.no_grad():
        full = model.logits(x)
        for T in (1, 3, 6, 13):  # T = 1 and 3: no complete group at the last stage
            assert torch.allclose(model.logits(x[:, :T]), full[:, :T], atol=1e-5), T
    with pytest.raises(ValueError, match="exceeds n_ctx"):
        model.logits(torch.zeros(1, 17, dtype=torch.long))


def test_initial_loss_near_log_v():
    torch.manual_seed(1)
    model = build_model(ModelConfig.make(NAME, n_layer=2, d_model=32, n_head=2, n_ctx=128, vocab_size=97))
    x = torch.randint(0, 97, (2, 128))
    assert abs(model(x, x).item() - math.log(97)) < 0.05


@pytest.mark.parametrize(
    "bad,match",
    [
        ({"n_stage": 0}, "n_stage"),
        ({"pool": 1}, "pool must be at least 2"),
        ({"n_ctx": 8, "n_stage": 5}, "total stride"),
        ({"d_model": 30, "n_head": 4}, "multiple of model.n_head"),
        ({"tie_weights": 1}, "tie_weights"),
    ],
)
def test_bad_args_raise(bad, match):
    with pytest.raises(UserError, match=match):
        ModelConfig.make(NAME, **bad)


def test_bad_shape_option_raises():
    with pytest.raises(UserError, match="head_dim"):
        shape_for_n(1e5, NAME, head_dim=3)
