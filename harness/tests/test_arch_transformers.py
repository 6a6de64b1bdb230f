"""Transformer variants of the arena: Transformer++ (transformer_pp), ALBERT (albert), the Universal
Transformer (universal) and the GPT's GLU MLPs (gpt with mlp = "swiglu" / "geglu")."""

import math

import pytest
import torch
import torch.nn.functional as F

from harness.errors import UserError
from harness.models import ModelConfig, build_model, model_counts, shape_for_n
from harness.models.gpt import GPT
from harness.models.layers import MLP, GatedMLP, RMSNorm, gated_hidden
from harness.models.universal import coordinate_signal
from harness.tests.arch_checks import check_causal, check_counts, check_shape_policy, check_trains

TINY = dict(n_layer=2, d_model=32, n_head=2, n_ctx=16, vocab_size=64)

VARIANTS = [
    ("transformer_pp", {}),
    ("transformer_pp", {"tie_weights": True, "n_head": 1}),
    ("albert", {}),  # E = min(128, 32) = 32, tied
    ("albert", {"emb_dim": 16, "tie_weights": False, "bias": False, "n_layer": 3}),
    ("universal", {}),  # fixed sinusoidal coordinates, untied
    ("universal", {"coords": "learned", "tie_weights": True}),
    ("universal", {"bias": False, "n_layer": 3}),
    ("gpt", {"mlp": "swiglu"}),
    ("gpt", {"mlp": "geglu", "bias": False, "pos": "rotary", "tie_weights": True}),
]


@pytest.mark.parametrize("name,extra", VARIANTS)
def test_arena_checks(name, extra):
    fields = {**TINY, **extra}
    check_counts(name, **fields)
    check_causal(name, **fields)
    check_trains(name, **fields)


@pytest.mark.parametrize("name", ["transformer_pp", "albert", "universal"])
def test_shape_policy(name):
    check_shape_policy(name)
    check_shape_policy(name, decades=(3e4, 3e5), aspect=64, min_layers=2)
    for n in (1e4, 1e5, 1e6, 1e7):
        s, g = shape_for_n(n, name), shape_for_n(n, "gpt")
        assert s["d_model"] % 8 == 0 and s["d_model"] % s["n_head"] == 0
        assert s["n_layer"] == g["n_layer"]  # the GPT's depth rule
        if name == "transformer_pp":
            assert s == g  # and its widths: a block has ~12 d^2 weights either way
        else:  # the one shared block holds all n: ~sqrt(n_layer) times the GPT's width
            assert s["d_model"] >= g["d_model"]


# ------------------------------------------------------------------------------------------ hand counts
def test_transformer_pp_counts_by_hand():
    c = model_counts(ModelConfig.make("transformer_pp", **TINY))  # L=2, d=32, H=2, T=16, V=64, untied
    h = 88  # SwiGLU width: multiple of 8 nearest 2/3 * 4 * 32 = 85.3
    assert gated_hidden(32) == h
    block = 4 * 32 * 32 + 3 * 32 * h  # qkv + out, gate + value + out: 4096 + 8448, no biases
    assert c.n_kaplan == 2 * block == 25088
    assert c.n_non_embedding == 2 * (block + 2 * 32) + 32 == 25248  # two RMSNorm gains per block + final one
    assert c.n_total == 25248 + 2 * 64 * 32 == 29344  # embedding + untied head, no position table (RoPE)
    assert c.flops_per_token_kaplan == 6 * 25088 + 6 * 2 * 16 * 32 == 156672
    # App. F per layer: qkv 6144, logits 2Td 1024, softmax 3HT 96, @V 1024, out 2048, SwiGLU 2*3dh 16896
    per_layer = 6144 + 1024 + 96 + 1024 + 2048 + 16896
    assert c.flops_per_token_hoffmann == 3 * (2 * 64 * 32 + 2 * per_layer + 2 * 32 * 64) == 187968
    # the GPT with the same three changes (SwiGLU, RoPE, no biases) has exactly these counts
    same = ModelConfig.make("gpt", **TINY, mlp="swiglu", pos="rotary", bias=False)
    assert model_counts(same) == c


def test_albert_counts_by_hand():
    cfg = ModelConfig.make("albert", **{**TINY, "n_layer": 3, "emb_dim": 16})  # tied, biases
    c = model_counts(cfg)
    assert c.n_kaplan == 12 * 32 * 32 == 12288  # the shared block ONCE, not 3 times
    assert c.n_non_embedding == 12288 + 9 * 32 + 4 * 32 + 2 * 32 == 12768  # biases, 2 LNs, final LN
    # embeddings: tokens V E, positions T E, E -> d and d -> E with biases; head tied
    assert c.n_total == 12768 + 64 * 16 + 16 * 16 + (16 * 32 + 32) + (32 * 16 + 16) == 15120
    assert c.flops_per_token_kaplan == 3 * (6 * 12288 + 6 * 16 * 32) == 230400  # every application counted
    per_layer = 6144 + 1024 + 96 + 1024 + 2048 + 16384  # as the GPT's layer: ..., GELU MLP 2*8d^2
    forward = 2 * 64 * 16 + 2 * 16 * 32 + 3 * per_layer + 2 * 32 * 16 + 2 * 16 * 64
    assert c.flops_per_token_hoffmann == 3 * forward == 258912
    # more applications: the same parameters, more FLOPs
    deeper = model_counts(ModelConfig.make("albert", **{**TINY, "n_layer": 6, "emb_dim": 16}))
    assert (deeper.n_kaplan, deeper.n_non_embedding, deeper.n_total) == (c.n_kaplan, c.n_non_embedding, c.n_total)
    assert deeper.flops_per_token_hoffmann == c.flops_per_token_hoffmann + 3 * 3 * per_layer  # 3 more layers, x3


def test_universal_counts_by_hand():
    c = model_counts(ModelConfig.make("universal", **{**TINY, "n_layer": 3, "coords": "learned"}))  # untied
    assert c.n_kaplan == 12288 and c.n_non_embedding == 12768  # the shared block once (+ biases, norms)
    assert c.n_total == 12768 + 64 * 32 + (16 + 3) * 32 + 64 * 32 == 17472  # tokens, positions, steps, head
    assert c.flops_per_token_kaplan == 230400
    per_layer = 6144 + 1024 + 96 + 1024 + 2048 + 16384
    assert c.flops_per_token_hoffmann == 3 * (2 * 64 * 32 + 3 * per_layer + 2 * 32 * 64) == 265056
    fixed = model_counts(ModelConfig.make("universal", **{**TINY, "n_layer": 3, "coords": "sinusoidal"}))
    assert fixed.n_total == 12768 + 2 * 64 * 32 and fixed.flops_per_token_hoffmann == c.flops_per_token_hoffmann


def test_gpt_glu_counts_by_hand():
    c = model_counts(ModelConfig.make("gpt", **TINY, mlp="swiglu"))  # learned positions, biases, untied
    block = 4 * 32 * 32 + 3 * 32 * 88  # 12544 weights
    biases = 3 * 32 + 32 + (2 * 88 + 32)  # qkv, out, [gate | value], MLP out
    assert c.n_kaplan == 2 * block == 25088
    assert c.n_non_embedding == 2 * (block + biases + 4 * 32) + 2 * 32 == 26080
    assert c.n_total == 26080 + 64 * 32 + 16 * 32 + 64 * 32 == 30688
    assert model_counts(ModelConfig.make("gpt", **TINY, mlp="geglu")) == c  # same shapes, other gate
    gelu = model_counts(ModelConfig.make("gpt", **TINY))
    assert abs(c.n_kaplan / gelu.n_kaplan - 1) < 0.03  # the width rule keeps ~12 d^2 per block


# ------------------------------------------------------------------------------------------ the GLU MLP
def test_gated_hidden_rule():
    assert [gated_hidden(d) for d in (8, 16, 64, 768)] == [24, 40, 168, 2048]  # 8/3 d to a multiple of 8
    assert gated_hidden(1) == 8 and gated_hidden(64, ratio=2) == 88  # at least 8; 2/3 * 2 * 64 = 85.3
    for d in (24, 40, 96, 200, 512):
        assert abs(3 * d * gated_hidden(d) / (8 * d * d) - 1) < 0.1  # ~8 d^2 weights
        assert gated_hidden(d) % 8 == 0


@pytest.mark.parametrize("activation", ["swiglu", "geglu"])
def test_gated_mlp_matches_reference(activation):
    torch.manual_seed(0)
    m = GatedMLP(24, 40, bias=True, activation=activation)
    x = torch.randn(3, 5, 24)
    w_gate, w_value = m.fc.weight.chunk(2, dim=0)
    b_gate, b_value = m.fc.bias.chunk(2)
    act = F.silu if activation == "swiglu" else (lambda z: F.gelu(z, approximate="tanh"))
    ref = (act(x @ w_gate.T + b_gate) * (x @ w_value.T + b_value)) @ m.proj.weight.T + m.proj.bias
    assert torch.allclose(m(x), ref, atol=1e-6)
    with pytest.raises(ValueError, match="activation"):
        GatedMLP(24, 40, activation="relu")


def test_gpt_default_mlp_is_unchanged():
    cfg = ModelConfig.make("gpt", **TINY)
    assert "mlp" not in cfg.canonical()  # run ids of existing configs do not change
    assert ModelConfig.make("gpt", **TINY, mlp="swiglu").canonical()["mlp"] == "swiglu"
    m = build_model(cfg)
    assert all(type(b.mlp) is MLP and b.mlp.fc.weight.shape == (128, 32) for b in m.blocks)
    g = build_model(ModelConfig.make("gpt", **TINY, mlp="geglu"))
    assert all(type(b.mlp) is GatedMLP and b.mlp.fc.weight.shape == (2 * 88, 32) for b in g.blocks)


# ------------------------------------------------------------------------------------------ structure
def test_transformer_pp_structure():
    m = build_model(ModelConfig.make("transformer_pp", **TINY))
    assert not [n for n, _ in m.named_parameters() if n.endswith("bias")]  # no biases anywhere
    norms = [mod for mod in m.modules() if "Norm" in type(mod).__name__]
    assert len(norms) == 2 * 2 + 1 and all(isinstance(n, RMSNorm) for n in norms)
    assert all(type(b.mlp) is GatedMLP and b.mlp.activation == "swiglu" for b in m.blocks)
    assert not any(isinstance(mod, torch.nn.Embedding) and mod.num_embeddings == 16 for mod in m.modules())
    assert m.head is not None and m.head_weight is not m.wte.weight  # untied by default
    tied = build_model(ModelConfig.make("transformer_pp", **TINY, tie_weights=True))
    assert tied.head is None and tied.head_weight is tied.wte.weight


def test_albert_shares_one_block_and_factorises():
    torch.manual_seed(0)
    cfg = ModelConfig.make("albert", **{**TINY, "n_layer": 3, "emb_dim": 16})
    m = build_model(cfg).eval()
    assert m.wte.weight.shape == (64, 16) and m.head_weight is m.wte.weight  # V x E, tied
    assert build_model(ModelConfig.make("albert", **TINY)).wte.weight.shape == (64, 32)  # E = 128 capped at d
    x = torch.randint(0, 64, (2, 16))
    with torch.no_grad():
        h = m.emb_in(m.wte(x) + m.wpe.weight[:16])
        for _ in range(3):
            h = m.block(h)
        ref = F.linear(m.emb_out(m.ln_f(h)), m.wte.weight)
        assert torch.allclose(m.logits(x), ref, atol=1e-6)
    one = build_model(ModelConfig.make("albert", **{**TINY, "n_layer": 1, "emb_dim": 16}))
    assert one.measured_total_params() == m.measured_total_params()  # depth adds no parameters


def test_universal_adds_coordinates_before_every_step():
    torch.manual_seed(0)
    for coords in ("learned", "sinusoidal"):
        m = build_model(ModelConfig.make("universal", **{**TINY, "n_layer": 3, "coords": coords})).eval()
        x = torch.randint(0, 64, (2, 12))
        P = m.coordinates(12)
        assert P.shape == (3, 12, 32) and not torch.allclose(P[0], P[1])  # the steps are told apart
        with torch.no_grad():
            h = m.wte(x)
            for t in range(3):
                h = m.block(h + P[t])
            assert torch.allclose(m.logits(x), F.linear(m.ln_f(h), m.head_weight), atol=1e-6)
    assert torch.equal(m.coordinates(12), coordinate_signal(3, 16, 32, scale=0.02)[:, :12])  # the last m built
    P = coordinate_signal(n_layer=2, n_ctx=5, d_model=6)
    i, t, j = 3, 2, 1  # position 3, step 2, channels 2j and 2j + 1
    w = 10000 ** (2 * j / 6)
    assert math.isclose(P[t - 1, i, 2 * j].item(), math.sin(i / w) + math.sin(t / w), rel_tol=1e-6)
    assert math.isclose(P[t - 1, i, 2 * j + 1].item(), math.cos(i / w) + math.cos(t / w), rel_tol=1e-6)
    assert coordinate_signal(1, 4, 7).shape == (1, 4, 7)  # odd widths work


def test_sequences_longer_than_context_are_refused():
    for name in ("transformer_pp", "albert", "universal"):
        m = build_model(ModelConfig.make(name, **TINY))
        with pytest.raises(ValueError, match="n_ctx"):
            m.logits(torch.zeros(1, 17, dtype=torch.long))


def test_initial_loss_is_near_log_v():
    torch.manual_seed(0)
    x, y = torch.randint(0, 97, (4, 16)), torch.randint(0, 97, (4, 16))
    for name in ("transformer_pp", "albert", "universal"):
        m = build_model(ModelConfig.make(name, **{**TINY, "vocab_size": 97}))
        assert abs(m(x, y).item() - math.log(97)) < 0.05, name


# ------------------------------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    "name,bad,match",
    [
        ("transformer_pp", {"d_model": 30, "n_head": 4}, "multiple of model.n_head"),
        ("transformer_pp", {"d_model": 30, "n_head": 2}, "even head dimension"),  # head dim 15
        ("transformer_pp", {"mlp_ratio": 0}, "mlp_ratio"),
        ("transformer_pp", {"tie_weights": 1}, "tie_weights"),
        ("albert", {"emb_dim": 0}, "emb_dim"),
        ("albert", {"n_layer": 0}, "n_layer"),
        ("albert", {"d_model": 30, "n_head": 4}, "multiple of model.n_head"),
        ("albert", {"bias": "yes"}, "bias"),
        ("universal", {"coords": "rotary"}, "coords"),
        ("universal", {"n_head": 3}, "multiple of model.n_head"),
        ("gpt", {"mlp": "relu"}, "mlp"),
        ("gpt", {"mlp": "SwiGLU"}, "mlp"),
    ],
)
def test_bad_args_raise(name, bad, match):
    with pytest.raises(UserError, match=match):
        ModelConfig.make(name, **{**TINY, **bad})


def test_unknown_fields_and_shape_options_raise():
    with pytest.raises(UserError, match="unknown field"):
        ModelConfig.make("transformer_pp", bias=True)  # Transformer++ has no biases to switch on
    with pytest.raises(UserError, match="unknown field"):
        ModelConfig.make("universal", emb_dim=16)
    with pytest.raises(UserError, match="shape option"):
        shape_for_n(1e5, "albert", aspect=0)
    with pytest.raises(UserError, match="no shape option"):
        shape_for_n(1e5, "universal", emb_dim=64)
    assert GPT.shape_for(1e5) == shape_for_n(1e5, "transformer_pp")
