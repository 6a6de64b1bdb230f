"""State-space entrants of the arena: Mamba (mamba) and the Mamba-attention hybrid (hybrid).

The chunked selective scan is checked against a plain sequential loop over time steps, written here, for its
values and its gradients, for chunk sizes that do and do not divide T, with and without the backward's
recomputation, and under decays strong enough to underflow.
"""

import math

import pytest
import torch
import torch.nn.functional as F

import harness.models.mamba as mamba
from harness.errors import UserError
from harness.models import ModelConfig, build_model, model_counts, shape_for_n
from harness.models.hybrid import AttentionBlock, Hybrid, is_attention
from harness.models.mamba import MambaBlock, MambaMixer, mixer_counts, scan_chunk_for, selective_scan
from harness.models.measure import measured_counts
from harness.tests.arch_checks import check_causal, check_counts, check_shape_policy, check_trains

TINY = dict(n_layer=2, d_model=32, n_ctx=16, vocab_size=64)
TINY_HYBRID = dict(n_layer=4, d_model=32, n_head=2, n_ctx=16, vocab_size=64)  # M M A M


def sequential_scan(u, dt, A, B, C):
    """The reference: h_t = exp(dt_t A) h_{t-1} + dt_t B_t u_t, y_t = C_t . h_t, one time step at a time."""
    batch, T, D = u.shape
    h = u.new_zeros(batch, D, A.shape[1])
    ys = []
    for t in range(T):
        h = torch.exp(dt[:, t, :, None] * A) * h + (dt[:, t] * u[:, t])[:, :, None] * B[:, t, None, :]
        ys.append((h * C[:, t, None, :]).sum(-1))
    return torch.stack(ys, 1)


def scan_inputs(batch=2, T=37, D=6, N=4, dt_scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(batch, T, D, generator=g)
    dt = F.softplus(torch.randn(batch, T, D, generator=g) - 1) * dt_scale
    A = -torch.exp(torch.randn(D, N, generator=g))
    B, C = torch.randn(batch, T, N, generator=g), torch.randn(batch, T, N, generator=g)
    return [z.requires_grad_() for z in (u, dt, A, B, C)]


def _grads(fn, inputs):
    y = fn(*inputs)
    weights = torch.linspace(-1, 1, y.numel()).view_as(y)  # a loss that weighs every output differently
    return y, torch.autograd.grad((y * weights).sum(), inputs)


@pytest.mark.parametrize("chunk", [1, 2, 3, 4, 5, 8, 16, 37, 64, 0])
@pytest.mark.parametrize("save", [True, False])
def test_chunked_scan_matches_sequential(chunk, save, monkeypatch):
    if not save:  # backward recomputes each chunk's decays and states from the saved chunk-entry states
        monkeypatch.setattr(mamba, "SAVE_STATES_BYTES", 0)
    inputs = scan_inputs()
    y_ref, g_ref = _grads(sequential_scan, inputs)
    y, g = _grads(lambda *a: selective_scan(*a, chunk), inputs)
    assert y.shape == y_ref.shape
    torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-5)
    for name, a, b in zip(("u", "dt", "A", "B", "C"), g, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * b.abs().max().item(), msg=f"dL/d{name}")


def test_chunked_scan_survives_decays_that_underflow():
    # dt up to ~40 and |A| up to ~20: exp(dt A) underflows to 0 within a step; nothing may become inf or nan
    inputs = scan_inputs(T=23, dt_scale=40.0, seed=1)
    y_ref, g_ref = _grads(sequential_scan, inputs)
    for chunk in (4, 23):
        y, g = _grads(lambda *a, c=chunk: selective_scan(*a, c), inputs)
        assert torch.isfinite(y).all() and all(torch.isfinite(x).all() for x in g)
        torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-4)
        for a, b in zip(g, g_ref, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * b.abs().max().item())


def test_scan_chunk_only_changes_speed():
    cfg = {**TINY, "n_ctx": 24}
    x = torch.randint(0, 64, (2, 24), generator=torch.Generator().manual_seed(0))
    logits = []
    for chunk in (0, 1, 5, 64):
        torch.manual_seed(0)
        logits.append(build_model(ModelConfig.make("mamba", scan_chunk=chunk, **cfg)).logits(x))
    for other in logits[1:]:
        torch.testing.assert_close(other, logits[0], rtol=1e-5, atol=1e-6)


def test_automatic_chunk():
    cpu = torch.device("cpu")
    assert scan_chunk_for(16, 16, 112, cpu) == 4  # 2^17 / (16 * 16 * 112) = 4.6
    assert scan_chunk_for(4, 16, 112, cpu) == 16
    assert scan_chunk_for(1, 1, 1, cpu) == 64 and scan_chunk_for(64, 16, 4096, cpu) == 4  # clamped to [4, 64]
    assert scan_chunk_for(16, 16, 112, torch.device("meta")) == 64


def test_causal_conv_is_conv1d():
    torch.manual_seed(0)
    mixer = MambaMixer(8, d_conv=4)
    mixer.reset_parameters(0.02)
    x = torch.randn(3, 11, 16)  # d_inner = 16
    ref = F.conv1d(F.pad(x.transpose(1, 2), (3, 0)), mixer.conv_weight[:, None, :], mixer.conv_bias, groups=16)
    torch.testing.assert_close(mixer.causal_conv(x), ref.transpose(1, 2))


# ------------------------------------------------------------------------------------------ arena checks
VARIANTS = [
    ("mamba", {}),
    ("mamba", {"tie_weights": False, "bias": True, "d_state": 8, "expand": 1, "dt_rank": 3, "scan_chunk": 3}),
    ("mamba", {"d_conv": 2, "n_layer": 1, "scan_chunk": 16}),
    ("hybrid", {}),
    ("hybrid", {"attn_every": 2, "n_layer": 3, "n_head": 4, "tie_weights": False, "bias": True}),
]


def _elementwise_flops(name, fields) -> float:
    """Training FLOPs per token the analytic Hoffmann count has and the FLOP counter cannot see: each Mamba
    mixer's conv and scan arithmetic (element-wise ops) and each attention block's softmax (3 H T)."""
    cfg = ModelConfig.make(name, **fields).args
    m = mixer_counts(
        cfg.d_model, cfg.d_state, cfg.d_conv, cfg.expand, mamba.dt_rank_for(cfg.d_model, cfg.dt_rank), cfg.bias
    )
    if name == "mamba":
        return 3 * cfg.n_layer * m["elementwise"]
    n_attn = sum(is_attention(i, cfg.attn_every) for i in range(cfg.n_layer))
    return 3 * ((cfg.n_layer - n_attn) * m["elementwise"] + n_attn * 3 * cfg.n_head * cfg.n_ctx)


@pytest.mark.parametrize("name,extra", VARIANTS)
def test_arena_checks(name, extra):
    fields = {**(TINY if name == "mamba" else TINY_HYBRID), **extra}
    # The matmul part is measured exactly: the FLOP counter sees every matmul (projections, the scan's readout
    # C . h, attention), and the analytic count exceeds it by exactly the element-wise FLOPs it cannot see
    cfg = ModelConfig.make(name, **fields)
    analytic = model_counts(cfg).flops_per_token_hoffmann
    measured = measured_counts(build_model(cfg), cfg.n_ctx, cfg.vocab_size).flops_per_token_hoffmann
    unseen = _elementwise_flops(name, fields)
    assert measured == pytest.approx(analytic - unseen, rel=1e-12)
    assert 0.05 < unseen / analytic < 0.3  # the scan is a real share at these tiny widths (d_model 32)
    # hence check_counts's tolerance: the unseen share, plus rounding
    check_counts(name, flop_rtol=unseen / analytic + 1e-9, **fields)
    check_causal(name, **fields)
    check_trains(name, **fields)


@pytest.mark.parametrize("name", ["mamba", "hybrid"])
def test_shape_policy(name):
    check_shape_policy(name)
    check_shape_policy(name, decades=(3e4, 3e5), aspect=64, min_layers=3)
    for n in (1e4, 1e5, 1e6, 1e7):
        s, g = shape_for_n(n, name), shape_for_n(n, "gpt")
        assert s["d_model"] % 8 == 0
        assert s["n_layer"] == max(2 if name == "mamba" else 3, 2 * g["n_layer"])  # twice the GPT's depth
        assert 0.8 < model_counts(ModelConfig.make(name, **s)).n_kaplan / n < 1.25
        if name == "hybrid":
            assert s["d_model"] % s["n_head"] == 0
            assert s["n_head"] == 1 or 48 <= s["d_model"] / s["n_head"] <= 96  # heads of ~64 channels
    assert shape_for_n(1e5, "mamba") == {"n_layer": 4, "d_model": 56}  # 4 x 23296 = 93184 weights
    with pytest.raises(UserError, match="aspect"):
        shape_for_n(1e5, "mamba", aspect=0)
    with pytest.raises(UserError, match="min_layers"):
        shape_for_n(1e5, "mamba", min_layers=0)
    with pytest.raises(UserError, match="head_dim"):
        shape_for_n(1e5, "hybrid", head_dim=4)


# ------------------------------------------------------------------------------------------ hand counts
def test_mamba_counts_by_hand():
    # L=2, d=32 -> d_inner 64, d_state 16, d_conv 4, dt_rank ceil(32/16) = 2, V=100, tied, no biases
    c = model_counts(ModelConfig.make("mamba", n_layer=2, d_model=32, n_ctx=16, vocab_size=100))
    layer = 32 * 128 + 64 * (2 + 32) + 2 * 64 + 64 * 32  # in_proj 4096, x_proj 2176, dt_proj 128, out_proj 2048
    assert layer == 8448 and c.n_kaplan == 2 * 8448 == 16896
    # + conv 64*4 + 64, dt bias 64, A_log 64*16, D 64 (1472), the block's RMSNorm 32; the final RMSNorm 32
    assert c.n_non_embedding == 2 * (8448 + 1472 + 32) + 32 == 19936
    assert c.n_total == 19936 + 100 * 32 == 23136  # one (tied) embedding
    assert c.flops_per_token_kaplan == 6 * 16896  # no context term
    # forward per token: embedding 2Vd = 6400; per layer matmuls 2*8448 = 16896, conv 2*4*64 = 512,
    # scan 7*64*16 = 7168 -> 24576; logits 6400. 6400 + 2*24576 + 6400 = 61952, training x3
    assert c.flops_per_token_hoffmann == 3 * 61952 == 185856
    untied = model_counts(ModelConfig.make("mamba", n_layer=2, d_model=32, vocab_size=100, tie_weights=False))
    assert untied.n_total == 23136 + 3200 and untied.n_kaplan == 16896


def test_hybrid_counts_by_hand():
    # L=4 with attn_every 4: M M A M; d=32, H=2, T=16, V=100, mlp_ratio 4, tied, no biases
    c = model_counts(ModelConfig.make("hybrid", n_layer=4, d_model=32, n_head=2, n_ctx=16, vocab_size=100))
    assert c.n_kaplan == 3 * 8448 + 12 * 32 * 32 == 37632  # three Mamba mixers (as above) + 4d^2 + 8d^2
    assert c.n_non_embedding == 3 * 9952 + (12288 + 2 * 32) + 32 == 42240  # attention block: two RMSNorms
    assert c.n_total == 42240 + 3200
    assert c.flops_per_token_kaplan == 6 * 37632 + 6 * 1 * 16 * 32 == 228864  # one attention block's context
    # attention block forward: qkv 6144, logits 2*16*32 = 1024, softmax 3*2*16 = 96, @V 1024, out 2048,
    # MLP 2*2*32*128 = 16384 -> 26720. 6400 + 3*24576 + 26720 + 6400 = 113248, training x3
    assert c.flops_per_token_hoffmann == 3 * 113248 == 339744


# ------------------------------------------------------------------------------------------ structure
def test_mamba_initialisation_and_groups():
    torch.manual_seed(0)
    m = build_model(ModelConfig.make("mamba", **TINY))
    mixer = m.blocks[0].mixer
    dt = F.softplus(mixer.dt_proj.bias)
    assert 1e-3 * 0.999 <= dt.min() and dt.max() <= 0.1 * 1.001  # the paper's dt range
    torch.testing.assert_close(-torch.exp(mixer.A_log), -torch.arange(1.0, 17.0).repeat(64, 1))  # S4D-real: -(n+1)
    assert torch.equal(mixer.D, torch.ones(64)) and m.head is None and m.head_weight is m.wte.weight
    decayed, plain = m.param_groups(0.1)
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    names = {id(p): n for n, p in m.named_parameters()}
    assert all(not names[id(p)].endswith("A_log") for p in decayed["params"])
    assert {names[id(p)] for p in plain["params"]} >= {"blocks.0.mixer.A_log", "blocks.0.mixer.D"}
    assert len(decayed["params"]) + len(plain["params"]) == len(list(m.parameters()))


def test_hybrid_layer_pattern():
    m = build_model(ModelConfig.make("hybrid", **{**TINY_HYBRID, "n_layer": 9}))
    kinds = "".join("A" if isinstance(b, AttentionBlock) else "M" for b in m.blocks)
    assert kinds == "MMAMMMAMM"  # attention at i % 4 == 2, as Jamba's offset in its period
    assert all(isinstance(b, MambaBlock) == (k == "M") for b, k in zip(m.blocks, kinds, strict=True))
    assert isinstance(m, Hybrid) and not any("wpe" in n or "rot" in n for n, _ in m.named_parameters())
    jamba = build_model(ModelConfig.make("hybrid", **{**TINY_HYBRID, "n_layer": 8, "attn_every": 8}))
    assert [isinstance(b, AttentionBlock) for b in jamba.blocks].index(True) == 4  # Jamba's 1:7, offset 4
    assert sum(isinstance(b, AttentionBlock) for b in jamba.blocks) == 1


def test_initial_loss_near_uniform():
    for name, fields in (("mamba", TINY), ("hybrid", TINY_HYBRID)):
        torch.manual_seed(0)
        m = build_model(ModelConfig.make(name, **fields))
        x = torch.randint(0, 64, (4, 16))
        y = torch.randint(0, 64, (4, 16))
        assert abs(m(x, y).item() - math.log(64)) < 0.05 * math.log(64)


# ------------------------------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    "name,fields,match",
    [
        ("mamba", {"d_state": 0}, "d_state"),
        ("mamba", {"expand": -1}, "expand"),
        ("mamba", {"d_conv": 1.5}, "d_conv"),
        ("mamba", {"dt_rank": -1}, "dt_rank"),
        ("mamba", {"scan_chunk": -2}, "scan_chunk"),
        ("mamba", {"scan_chunk": True}, "scan_chunk"),
        ("mamba", {"tie_weights": "yes"}, "tie_weights"),
        ("hybrid", {"attn_every": 1}, "attn_every"),
        ("hybrid", {"n_layer": 2}, "no attention block"),  # attention would be layer 2 of 0, 1
        ("hybrid", {"d_model": 30, "n_head": 4}, "multiple of model.n_head"),
        ("hybrid", {"mlp_ratio": 0}, "mlp_ratio"),
        ("hybrid", {"bias": 1}, "bias"),
    ],
)
def test_bad_args(name, fields, match):
    with pytest.raises(UserError, match=match):
        ModelConfig.make(name, **fields)
