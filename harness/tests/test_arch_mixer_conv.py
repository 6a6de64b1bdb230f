"""The causal MLP-Mixer ("mixer") and the lightweight / dynamic convolution models ("lightconv", "dynamicconv")."""

import math

import pytest
import torch

from harness.errors import UserError
from harness.models import ModelConfig, build_model, model_counts, shape_for_n
from harness.models.conv import causal_conv
from harness.tests.arch_checks import check_causal, check_counts, check_shape_policy, check_trains

TINY = {"n_layer": 2, "d_model": 32, "n_ctx": 16, "vocab_size": 97}
VARIANTS = [
    ("mixer", {}),
    ("mixer", {"token_mlp": True}),
    ("mixer", {"bias": False, "tie_weights": True}),
    ("lightconv", {"kernel_size": 7, "n_head": 2}),
    ("lightconv", {"kernel_size": 16, "bias": False, "tie_weights": True}),
    ("dynamicconv", {"kernel_size": 7, "n_head": 2}),
    ("dynamicconv", {"kernel_size": 3, "n_head": 4, "bias": False, "tie_weights": True}),
]


@pytest.mark.parametrize("name,extra", VARIANTS)
def test_trains(name, extra):
    check_trains(name, **{**TINY, **extra})


@pytest.mark.parametrize("name,extra", VARIANTS)
def test_causal(name, extra):
    check_causal(name, **{**TINY, **extra})
    check_causal(name, t=1, **{**TINY, **extra})  # even the second position sees nothing of what follows


@pytest.mark.parametrize("name,extra", VARIANTS)
def test_counts_match_module_and_flop_counter(name, extra):
    # default 5 %: every count here is a matmul or conv the counter sees (DynamicConv's 3 H K softmax is not,
    # 0.1 % of its count)
    check_counts(name, **{**TINY, **extra})


@pytest.mark.parametrize("name", ["lightconv", "dynamicconv"])
def test_conv_shape_policy(name):
    check_shape_policy(name)


def test_mixer_shape_policy():
    # at the default n_ctx = 128 one token map is 16384 weights, above 1.6 x 1e4: that decade needs a short context
    check_shape_policy("mixer", decades=(1e5, 1e6, 1e7))
    # options the policy cannot return (they are the run's): check_shape_policy builds at the defaults, so by hand
    for n_ctx, token_mlp, decades in ((32, False, (1e4, 1e5, 1e6)), (256, False, (1e5, 1e6)), (64, True, (1e4, 1e6))):
        for n in decades:
            shape = shape_for_n(n, "mixer", n_ctx=n_ctx, token_mlp=token_mlp)
            cfg = ModelConfig.make("mixer", n_ctx=n_ctx, token_mlp=token_mlp, **shape)
            achieved = model_counts(cfg).n_kaplan
            assert 1 / 1.6 < achieved / n < 1.6, (n_ctx, token_mlp, n, shape, achieved)
            assert shape["d_model"] % 8 == 0
    assert shape_for_n(1e3, "mixer") == {"n_layer": 1, "d_model": 8}  # the token map alone exceeds n


# ------------------------------------------------------------------------------------------ counts by hand
def test_mixer_counts_by_hand():
    # L=2, d=32, T=16, V=97, f=4, untied, biases, one token map per layer
    c = model_counts(ModelConfig.make("mixer", **TINY))
    assert c.n_kaplan == 2 * (16 * 16 + 2 * 4 * 32 * 32) == 16896  # token map (full 16 x 16, stored) + MLP
    # per layer biases: token map 16 (one per position) + MLP 4d + d = 176; two LayerNorms 2 * 2d = 128
    assert c.n_non_embedding == 2 * (256 + 8192 + 176 + 128) + 64 == 17568
    assert c.n_total == 17568 + 2 * 97 * 32 == 23776  # wte + head, no position table
    # Kaplan: 6 x MLP weights + context term 6 L T d (the token map runs once per sequence: 2 T d per token)
    assert c.flops_per_token_kaplan == 6 * 2 * 8192 + 6 * 2 * 16 * 32 == 104448
    # Hoffmann forward: embeddings 2Vd = 6208; per layer token map 2 T d = 1024 + MLP 4 f d^2 = 16384; logits 6208
    assert c.flops_per_token_hoffmann == 3 * (6208 + 2 * (1024 + 16384) + 6208) == 141696
    t = model_counts(ModelConfig.make("mixer", **TINY, token_mlp=True))
    assert t.n_kaplan == 16896 + 2 * 256 and t.n_non_embedding == 17568 + 2 * (256 + 16)
    assert t.flops_per_token_hoffmann == 141696 + 3 * 2 * 1024


def test_conv_counts_by_hand():
    # L=2, d=32, T=16, V=97, H=2, K=7, f=4, untied, biases
    light = model_counts(ModelConfig.make("lightconv", **TINY, n_head=2, kernel_size=7))
    # per layer: fc d x 2d = 2048, proj d x d = 1024, kernel H x K = 14, MLP 8 d^2 = 8192
    assert light.n_kaplan == 2 * (2048 + 1024 + 14 + 8192) == 22556
    # biases fc 2d + proj d + MLP 4d + d = 256; two LayerNorms 128; final LayerNorm 64
    assert light.n_non_embedding == 22556 + 2 * (256 + 128) + 64 == 23388
    assert light.n_total == 23388 + 97 * 32 + 16 * 32 + 97 * 32 == 30108  # wte + wpe + head
    # Kaplan: 6 x per-token weights (kernel left out) + window term 6 L K d
    assert light.flops_per_token_kaplan == 6 * 2 * (2048 + 1024 + 8192) + 6 * 2 * 7 * 32 == 137856
    # Hoffmann forward: 2Vd 6208; per layer fc 4096 + conv 2 K d 448 + proj 2048 + MLP 16384 = 22976; logits 6208
    assert light.flops_per_token_hoffmann == 3 * (6208 + 2 * 22976 + 6208) == 175104
    dyn = model_counts(ModelConfig.make("dynamicconv", **TINY, n_head=2, kernel_size=7))
    # the kernel is a d x HK projection (448 weights, 14 biases) instead of the H x K matrix
    assert dyn.n_kaplan == 2 * (2048 + 1024 + 448 + 8192) == 23424
    assert dyn.n_non_embedding == 23424 + 2 * (256 + 14 + 128) + 64 == 24284
    assert dyn.flops_per_token_kaplan == 6 * 23424 + 6 * 2 * 7 * 32 == 143232
    # + kernel prediction 2 d H K = 896 and its softmax 3 H K = 42 per layer
    assert dyn.flops_per_token_hoffmann == 175104 + 3 * 2 * (896 + 42) == 180732


# ------------------------------------------------------------------------------------------ the mixing itself
def test_mixer_token_map_is_masked_and_prefix_consistent():
    torch.manual_seed(0)
    model = build_model(ModelConfig.make("mixer", **TINY, token_mlp=True)).eval()
    x = torch.randint(0, 97, (2, 16))
    with torch.no_grad():
        full = model.logits(x)
        short = model.logits(x[:, :9])  # T < n_ctx uses the top-left block
        assert torch.allclose(short, full[:, :9], atol=1e-6)
        for block in model.blocks:  # entries above the diagonal do nothing
            for w in (block.token.weight, block.token.weight_in):
                assert torch.all(w.triu(1) == 0)  # zero at initialisation
                w.add_(torch.randn_like(w).triu(1))
        assert torch.allclose(model.logits(x), full, atol=1e-6)
    model.train()
    model(x, x).backward()
    grad = model.blocks[0].token.weight.grad
    assert torch.all(grad.triu(1) == 0) and grad.tril().abs().sum() > 0


def test_mixer_token_map_equals_loop_reference():
    torch.manual_seed(1)
    model = build_model(ModelConfig.make("mixer", **TINY))
    mix = model.blocks[0].token
    with torch.no_grad():
        mix.weight.normal_()
        mix.bias.normal_()
        u = torch.randn(2, 10, 32)
        want = torch.stack([(mix.weight[t, : t + 1, None] * u[:, : t + 1]).sum(1) + mix.bias[t] for t in range(10)], 1)
        assert torch.allclose(mix(u), want, atol=1e-5)


def _loop_conv(a, w):
    """Naive reference: y[:, t, c] = sum_k w[h(c), k] a[:, t - K + 1 + k, c], zeros before the start."""
    B, T, d = a.shape
    H, K = w.shape[-2:]
    w = w.expand(B, T, H, K) if w.dim() == 2 else w
    out = torch.zeros_like(a)
    for t in range(T):
        for k in range(K):
            s = t - K + 1 + k
            if s >= 0:
                out[:, t] += w[:, t, :, k].repeat_interleave(d // H, dim=1) * a[:, s]
    return out


def test_causal_conv_equals_loop_reference():
    torch.manual_seed(2)
    a = torch.randn(2, 9, 12)
    static = torch.randn(3, 4).softmax(-1)
    dynamic = torch.randn(2, 9, 3, 4).softmax(-1)
    assert torch.allclose(causal_conv(a, static), _loop_conv(a, static), atol=1e-5)
    assert torch.allclose(causal_conv(a, dynamic), _loop_conv(a, dynamic), atol=1e-5)
    # the unfold path with the same kernel at every position is the conv1d path
    assert torch.allclose(causal_conv(a, static.expand(2, 9, 3, 4)), causal_conv(a, static), atol=1e-6)
    # normalised kernels average: a constant sequence comes back unchanged once the window is full
    ones = torch.ones(1, 9, 12)
    assert torch.allclose(causal_conv(ones, dynamic[:1])[:, 3:], ones[:, 3:], atol=1e-6)


@pytest.mark.parametrize("name", ["lightconv", "dynamicconv"])
def test_conv_kernels_are_softmax_normalised_and_prefix_consistent(name):
    torch.manual_seed(3)
    model = build_model(ModelConfig.make(name, **TINY, n_head=2, kernel_size=5)).eval()
    x = torch.randint(0, 97, (2, 16))
    with torch.no_grad():
        a = torch.randn(2, 16, 32)
        w = model.blocks[0].conv.kernel(a)
        assert w.shape == ((2, 5) if name == "lightconv" else (2, 16, 2, 5))
        assert torch.allclose(w.sum(-1), torch.ones(()), atol=1e-6) and torch.all(w > 0)
        assert torch.allclose(model.logits(x[:, :7]), model.logits(x)[:, :7], atol=1e-6)


def test_initial_loss_near_log_v_at_a_long_context():
    torch.manual_seed(4)
    for name in ("mixer", "lightconv", "dynamicconv"):
        model = build_model(ModelConfig.make(name, n_layer=2, d_model=32, n_ctx=256, vocab_size=97))
        x = torch.randint(0, 97, (2, 256))
        assert abs(model(x, x).item() - math.log(97)) < 0.05, name


def test_too_long_a_sequence_is_refused():
    for name in ("mixer", "lightconv"):
        model = build_model(ModelConfig.make(name, **TINY, **({"kernel_size": 3} if name != "mixer" else {})))
        with pytest.raises(ValueError, match="exceeds n_ctx"):
            model.logits(torch.zeros(1, 17, dtype=torch.long))


# ------------------------------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    "name,bad,match",
    [
        ("mixer", {"d_model": 0}, "d_model"),
        ("mixer", {"mlp_ratio": 1.5}, "mlp_ratio"),
        ("mixer", {"token_mlp": 1}, "token_mlp"),
        ("mixer", {"n_head": 2}, "unknown field"),
        ("lightconv", {"n_ctx": 16, "kernel_size": 17}, "kernel_size"),
        ("lightconv", {"kernel_size": 0}, "kernel_size"),
        ("dynamicconv", {"d_model": 30, "n_head": 4}, "multiple of model.n_head"),
        ("dynamicconv", {"bias": "yes"}, "bias"),
    ],
)
def test_bad_args_raise(name, bad, match):
    with pytest.raises(UserError, match=match):
        ModelConfig.make(name, **bad)


@pytest.mark.parametrize(
    "name,options,match",
    [
        ("mixer", {"n_ctx": 0}, "n_ctx"),
        ("mixer", {"aspect": 0.5}, "aspect"),
        ("mixer", {"token_mlp": 2}, "token_mlp"),
        ("lightconv", {"head_dim": 4}, "head_dim"),
        ("dynamicconv", {"n_ctx": 64}, "no shape option"),
    ],
)
def test_bad_shape_options_raise(name, options, match):
    with pytest.raises(UserError, match=match):
        shape_for_n(1e5, name, **options)
