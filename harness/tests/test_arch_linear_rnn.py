"""The linear-time entrants: RWKV-4 (harness/models/rwkv.py) and the Performer (harness/models/performer.py)."""

from __future__ import annotations

import math

import pytest
import torch

from harness.errors import UserError
from harness.models import ModelConfig, build_model, model_counts, shape_for_n
from harness.models.measure import measured_counts
from harness.models.performer import causal_linear_attention, favor_features, orthogonal_features
from harness.models.rwkv import WKV_FLOPS, wkv
from harness.tests.arch_checks import check_causal, check_counts, check_shape_policy, check_trains

SMALL = dict(n_layer=2, d_model=32, n_ctx=32, vocab_size=97)
RWKV_OPTIONS = [{}, {"tie_weights": True}, {"chunk": 5}]  # 5 does not divide n_ctx
PERFORMER_OPTIONS = [{}, {"pos": "rotary", "chunk": 5}, {"tie_weights": True, "bias": False, "n_features": 16}]


def _randomise(model: torch.nn.Module, seed: int = 0, std: float = 0.3) -> None:
    """Replace every parameter by a random draw (away from the zero / small initialisation), in place."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std + (0.0 if p.dim() > 1 else 0.5))


def _strictly_causal(model, vocab: int, T: int) -> None:
    """Tokens changed from t on leave the logits before t bit for bit the same (both models' stabilisers are
    causal, so not even rounding may differ), and change some logit from t on."""
    torch.manual_seed(1)
    x = torch.randint(0, vocab, (2, T))
    for t in (1, T // 2 + 1, T - 1):
        x2 = x.clone()
        x2[:, t:] = (x2[:, t:] + 1) % vocab
        with torch.no_grad():
            a, b = model.logits(x), model.logits(x2)
        assert torch.equal(a[:, :t], b[:, :t]), (t, (a[:, :t] - b[:, :t]).abs().max())
        assert not torch.allclose(a[:, t:], b[:, t:])


# ------------------------------------------------------------------------------------------------ RWKV
def wkv_sequential(w, u, k, v):
    """The RWKV-4 recurrence one token at a time, with the reference CUDA kernel's running max (the paper's
    numerically stable form): the ground truth for the chunked ``wkv``."""
    B, T, C = k.shape
    a = torch.zeros(B, C, dtype=k.dtype)
    b = torch.zeros(B, C, dtype=k.dtype)
    p = torch.full((B, C), -1e38, dtype=k.dtype)
    out = []
    for t in range(T):
        kt, vt = k[:, t], v[:, t]
        q = torch.maximum(p, u + kt)
        e1, e2 = torch.exp(p - q), torch.exp(u + kt - q)
        out.append((e1 * a + e2 * vt) / (e1 * b + e2))
        q = torch.maximum(w + p, kt)
        e1, e2 = torch.exp(w + p - q), torch.exp(kt - q)
        a, b, p = e1 * a + e2 * vt, e1 * b + e2, q
    return torch.stack(out, dim=1)


def _wkv_inputs(seed=0, B=2, T=37, C=6, k_scale=3.0):
    g = torch.Generator().manual_seed(seed)
    time_decay = torch.randn(C, generator=g) * 2.5  # decays from e^-e^-5 (slow) to e^-e^5 (instant)
    u = torch.randn(C, generator=g)
    k = torch.randn(B, T, C, generator=g) * k_scale
    v = torch.randn(B, T, C, generator=g)
    return time_decay, u, k, v


@pytest.mark.parametrize("chunk", [1, 4, 7, 16, 37, 64])  # 4, 7, 16 do not divide T = 37; 64 > T
def test_chunked_wkv_matches_sequential_reference_with_gradients(chunk):
    leaves = [x.double().requires_grad_() for x in _wkv_inputs()]
    ref = wkv_sequential(-torch.exp(leaves[0]), *leaves[1:])
    g = torch.randn(ref.shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    ref_grads = torch.autograd.grad((ref * g).sum(), leaves)

    inputs = [x.detach().float().requires_grad_() for x in leaves]
    out = wkv(-torch.exp(inputs[0]), *inputs[1:], chunk=chunk)
    assert out.dtype == torch.float32 and out.shape == ref.shape
    torch.testing.assert_close(out.double(), ref, rtol=1e-4, atol=1e-5)
    grads = torch.autograd.grad((out * g.float()).sum(), inputs)
    for name, got, want in zip(("time_decay", "u", "k", "v"), grads, ref_grads, strict=True):
        torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-4 * want.abs().max().item(), msg=name)


def test_chunked_wkv_is_stable_for_extreme_keys_and_decays():
    # keys near the clamp (|k| up to 55) next to small ones, decays from 1 - 3e-4 per token to e^-3000
    time_decay, u, k, v = _wkv_inputs(seed=3, T=50, k_scale=1.0)
    time_decay = torch.tensor([-8.0, -2.0, 0.0, 2.0, 5.0, 8.0])
    k[:, ::7] = 55.0
    k[:, 3::7] = -55.0
    ref = wkv_sequential(-torch.exp(time_decay.double()), u.double(), k.double(), v.double())
    for chunk in (8, 32):
        out = wkv(-torch.exp(time_decay), u, k, v, chunk=chunk)
        assert torch.isfinite(out).all()
        torch.testing.assert_close(out.double(), ref, rtol=1e-4, atol=1e-5)


def test_rwkv_chunk_size_changes_only_rounding_and_model_is_strictly_causal():
    torch.manual_seed(0)
    models = [build_model(ModelConfig.make("rwkv", **SMALL, chunk=c)) for c in (32, 5, 1)]
    for m in models:
        _randomise(m)  # the zero-initialised key / output matrices would make the WKV trivial
    x = torch.randint(0, 97, (2, 32), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        outs = [m.logits(x) for m in models]
    for o in outs[1:]:
        torch.testing.assert_close(o, outs[0], rtol=1e-4, atol=1e-4)
    _strictly_causal(models[1], 97, 32)


@pytest.mark.parametrize("extra", RWKV_OPTIONS)
def test_rwkv_arch_checks(extra):
    check_trains("rwkv", **SMALL, **extra)
    check_causal("rwkv", **SMALL, **extra)
    # the analytic Hoffmann count has the WKV as the recurrence costs it (17 d per layer and token, element-wise,
    # unseen by the FLOP counter), while the counter sees the chunked WKV's batched matmul, 4 (Q + 1) d per
    # layer and token: 11 % apart at these tiny shapes (d = 32, Q = 32); test_rwkv_measured_flops_exactly
    # accounts for the difference term by term.
    check_counts("rwkv", flop_rtol=0.12, **SMALL, **extra)


def test_rwkv_measured_flops_exactly():
    for extra in [*RWKV_OPTIONS, {"chunk": 7, "mlp_ratio": 2}]:
        cfg = ModelConfig.make("rwkv", **SMALL, **extra)
        a = cfg.args
        analytic = model_counts(cfg).flops_per_token_hoffmann
        measured = measured_counts(build_model(cfg), a.n_ctx, a.vocab_size).flops_per_token_hoffmann
        Q = min(a.chunk, a.n_ctx)
        n_chunks = -(-a.n_ctx // Q)
        chunked = 2 * (Q + 1) * Q * 2 * n_chunks * a.d_model / a.n_ctx  # (Q+1) x Q weights @ (e^k v, e^k)
        assert measured == pytest.approx(analytic + 3 * a.n_layer * (chunked - WKV_FLOPS * a.d_model), rel=1e-12)


def test_rwkv_counts_by_hand():
    c = model_counts(ModelConfig.make("rwkv", n_layer=2, d_model=64, n_ctx=128, vocab_size=256))
    # per layer: time mix 4 d^2 (key, value, receptance, output), channel mix d x 4d + 4d x d + d x d = 9 d^2
    assert c.n_kaplan == 2 * 13 * 64**2 == 106496
    # per layer: ln1, ln2 (2 x 2d), time_decay, time_first, mu_k, mu_v, mu_r (5d), channel mix mu_k, mu_r (2d)
    assert c.n_non_embedding == 106496 + 2 * (4 * 64 + 5 * 64 + 2 * 64) + 2 * 2 * 64 == 108160  # + ln0, ln_out
    assert c.n_total == 108160 + 2 * 256 * 64 == 140928  # embedding + head, no positions
    assert c.flops_per_token_kaplan == 6 * 106496 == 638976  # no context term
    # Hoffmann forward: embeddings 2Vd = 32768; per layer matmuls 2 * 13 d^2 = 106496, WKV 17 d = 1088;
    # output logits 2dV = 32768 -> 32768 + 2 * 107584 + 32768 = 280704; training x 3
    assert c.flops_per_token_hoffmann == 3 * 280704 == 842112
    tied = model_counts(ModelConfig.make("rwkv", n_layer=2, d_model=64, vocab_size=256, tie_weights=True))
    assert tied.n_total == 108160 + 256 * 64


def test_rwkv_initialisation_follows_the_reference():
    m = build_model(ModelConfig.make("rwkv", n_layer=3, d_model=16, n_ctx=8, vocab_size=50))
    first, last = m.blocks[0].att, m.blocks[2].att
    assert first.time_decay[0].item() == pytest.approx(-5) and first.time_decay[-1].item() == pytest.approx(3)
    assert last.time_decay[0].item() == pytest.approx(-5) and last.time_decay[-1].item() == pytest.approx(3)
    assert (last.time_decay[1:-1] < first.time_decay[1:-1]).all()  # deeper layers: slower decays mid-range
    torch.testing.assert_close(
        first.time_first[:3], torch.tensor([math.log(0.3), math.log(0.3) + 0.5, math.log(0.3) - 0.5])
    )
    assert first.mu_k[0] == 0 and (first.mu_k[1:] - torch.arange(1, 16) / 16).abs().max() < 1e-6  # (c / d)^1
    assert torch.allclose(last.mu_v, last.mu_k + 0.3)
    for lin in (first.key, first.receptance, first.output, m.blocks[0].ffn.value, m.blocks[0].ffn.receptance):
        assert not lin.weight.any()
    w = first.value.weight
    torch.testing.assert_close(w @ w.T, torch.eye(16))  # orthogonal
    assert m.wte.weight.abs().max() <= 1e-4


def test_rwkv_shape_policy_and_validation():
    check_shape_policy("rwkv")
    s = shape_for_n(1e6, "rwkv")
    assert (
        s["d_model"] % 8 == 0
        and 13 * s["n_layer"] * s["d_model"] ** 2 == model_counts(ModelConfig.make("rwkv", **s)).n_kaplan
    )
    assert shape_for_n(1e4, "rwkv", min_layers=3)["n_layer"] == 3
    deep = shape_for_n(1e7, "rwkv", aspect=16)
    assert deep["n_layer"] > shape_for_n(1e7, "rwkv")["n_layer"]
    for bad in ({"aspect": 0}, {"aspect": True}, {"min_layers": 0}, {"n_layer": 2}):
        with pytest.raises(UserError):
            shape_for_n(1e5, "rwkv", **bad)
    for bad in ({"n_layer": 0}, {"d_model": -8}, {"chunk": 0}, {"mlp_ratio": 1.5}, {"tie_weights": "yes"}):
        with pytest.raises(UserError):
            ModelConfig.make("rwkv", **bad)


# ------------------------------------------------------------------------------------------- Performer
def favor_naive(q, k, v, proj):
    """O(T^2) causal FAVOR+ without any stabiliser: phi = exp(W x' - |x'|^2 / 2) / sqrt(m) for queries and keys,
    the (T x T) lower-triangular matrix phi(q) phi(k)^T, rows normalised."""
    scale = q.shape[-1] ** -0.25
    m = proj.shape[0]

    def phi(x):
        x = x * scale
        return torch.exp(x @ proj.T - x.square().sum(-1, keepdim=True) / 2) / math.sqrt(m)

    weights = (phi(q) @ phi(k).transpose(-1, -2)).tril()
    return weights @ v / weights.sum(-1, keepdim=True)


@pytest.mark.parametrize("chunk", [1, 5, 8, 37, 64])  # 5, 8 do not divide T = 37; 64 > T
def test_chunked_favor_matches_naive_masked_reference_with_gradients(chunk):
    g = torch.Generator().manual_seed(0)
    B, H, T, dh, m = 2, 3, 37, 8, 12
    proj = orthogonal_features(m, dh, torch.Generator().manual_seed(1))
    q, k, v = (torch.randn(B, H, T, dh, generator=g) * s for s in (2.0, 2.0, 1.0))  # a wide range of features
    leaves = [x.double().requires_grad_() for x in (q, k, v)]
    ref = favor_naive(*leaves, proj.double())
    w = torch.randn(ref.shape, generator=g, dtype=torch.float64)
    ref_grads = torch.autograd.grad((ref * w).sum(), leaves)

    # float64: the stabilised, chunked computation is the naive one to rounding
    got64 = causal_linear_attention(*favor_features(leaves[0], leaves[1], proj.double()), leaves[2], chunk)
    torch.testing.assert_close(got64, ref, rtol=1e-10, atol=1e-12)
    # float32, with gradients
    inputs = [x.detach().float().requires_grad_() for x in leaves]
    out = causal_linear_attention(*favor_features(inputs[0], inputs[1], proj), inputs[2], chunk)
    torch.testing.assert_close(out.double(), ref, rtol=1e-4, atol=1e-5)
    grads = torch.autograd.grad((out * w.float()).sum(), inputs)
    for name, got, want in zip("qkv", grads, ref_grads, strict=True):
        torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-4 * want.abs().max().item(), msg=name)


def test_favor_features_are_orthogonal_seeded_and_unbiased():
    a = orthogonal_features(20, 8, torch.Generator().manual_seed(5))
    assert a.shape == (20, 8)
    assert torch.equal(a, orthogonal_features(20, 8, torch.Generator().manual_seed(5)))  # deterministic
    assert not torch.equal(a, orthogonal_features(20, 8, torch.Generator().manual_seed(6)))
    for block in (a[:8], a[8:16], a[16:]):  # rows orthogonal within each block of d_head rows
        gram = block.double() @ block.double().T
        torch.testing.assert_close(gram, torch.diag(gram.diagonal()), atol=1e-5, rtol=0)
    # uniformly random directions (QR signs fixed): no coordinate of the unit rows is biased; without the sign
    # fix the first coordinate of every block's first row would share one sign
    big = orthogonal_features(8 * 2048, 8, torch.Generator().manual_seed(0)).double()
    unit = big / big.norm(dim=1, keepdim=True)
    assert unit.mean(0).abs().max() < 0.03
    assert (unit[::8, 0] > 0).double().mean().item() == pytest.approx(0.5, abs=0.05)
    # phi(x) . phi(y) / m estimates exp(x . y) (x, y already scaled by d^-1/4)
    g = torch.Generator().manual_seed(1)
    x, y = (torch.randn(8, generator=g, dtype=torch.float64) * 0.3 for _ in range(2))
    phi = lambda z: torch.exp(big @ z - z @ z / 2)  # noqa: E731
    assert (phi(x) * phi(y)).mean().item() == pytest.approx(torch.exp(x @ y).item(), rel=0.02)


def test_performer_is_the_gpt_with_favor_attention():
    fields = dict(SMALL, n_head=2)
    torch.manual_seed(0)
    gpt = build_model(ModelConfig.make("gpt", **fields))
    torch.manual_seed(0)
    perf = build_model(ModelConfig.make("performer", **fields))
    gs, ps = gpt.state_dict(), perf.state_dict()  # the random features are a non-persistent buffer
    assert gs.keys() == ps.keys() and all(torch.equal(gs[k], ps[k]) for k in gs)  # same weights, same init
    assert {n for n, _ in perf.named_parameters()} == {n for n, _ in gpt.named_parameters()}
    feats = [b.attn.features for b in perf.blocks]
    assert feats[0].shape == (64, 16) and not torch.equal(feats[0], feats[1])  # one draw per layer
    again = build_model(ModelConfig.make("performer", **fields))
    assert all(torch.equal(b.attn.features, f) for b, f in zip(again.blocks, feats, strict=True))
    other = build_model(ModelConfig.make("performer", **fields, feature_seed=1))
    assert not torch.equal(other.blocks[0].attn.features, feats[0])
    with pytest.raises(ValueError):
        perf.logits(torch.zeros(1, 33, dtype=torch.long))  # T > n_ctx, as the GPT


def test_performer_chunk_size_changes_only_rounding_and_model_is_strictly_causal():
    models = []
    for chunk in (64, 5, 1):
        torch.manual_seed(0)
        models.append(build_model(ModelConfig.make("performer", **SMALL, n_head=2, chunk=chunk)))
        _randomise(models[-1], std=0.2)
    x = torch.randint(0, 97, (2, 32), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        outs = [m.logits(x) for m in models]
    for o in outs[1:]:
        torch.testing.assert_close(o, outs[0], rtol=1e-4, atol=1e-4)
    _strictly_causal(models[1], 97, 32)


@pytest.mark.parametrize("extra", PERFORMER_OPTIONS)
def test_performer_arch_checks(extra):
    fields = dict(SMALL, n_head=2, **extra)
    check_trains("performer", **fields)
    check_causal("performer", **fields)
    # the analytic count has FAVOR+ as the recurrence costs it (linear in T); the counter also sees the chunked
    # form's (Q x Q) products, 2 Q (m + d_head + 1) per head and token: 22 % at these tiny shapes (Q = n_ctx = 32,
    # m = 64, d_head = 16); test_performer_measured_flops_exactly accounts for it term by term.
    check_counts("performer", flop_rtol=0.25, **fields)


def test_performer_measured_flops_exactly():
    for extra in [*PERFORMER_OPTIONS, {"chunk": 7, "n_head": 4, "n_features": 24}]:
        cfg = ModelConfig.make("performer", **{**SMALL, "n_head": 2, **extra})
        a = cfg.args
        analytic = model_counts(cfg).flops_per_token_hoffmann
        measured = measured_counts(build_model(cfg), a.n_ctx, a.vocab_size).flops_per_token_hoffmann
        T, dh, m = a.n_ctx, a.d_model // a.n_head, a.n_features
        Q = min(a.chunk, T)
        padded = -(-T // Q) * Q
        state = 2 * 2 * m * (dh + 1)  # phi(q) [S, z] and phi(k)^T [v, 1], in the analytic count
        chunked = padded / T * (2 * Q * m + 2 * Q * (dh + 1) + state)  # what the chunked form does, padding included
        assert measured == pytest.approx(analytic + 3 * a.n_layer * a.n_head * (chunked - state), rel=1e-12)


def test_performer_counts_by_hand():
    c = model_counts(
        ModelConfig.make("performer", n_layer=2, d_model=64, n_head=2, n_ctx=128, vocab_size=256, n_features=32)
    )
    # the GPT's parameters (test_models.test_gpt_counts_by_hand): the random features are not parameters
    assert (c.n_kaplan, c.n_non_embedding, c.n_total) == (98304, 100096, 141056)
    assert c.flops_per_token_kaplan == 6 * 98304 + 6 * 2 * 32 * 64 == 614400  # n_ctx -> m in the context term
    # Hoffmann forward: the GPT's 329216 less its attention terms per layer (logits 2Td = 16384, softmax 3HT = 768,
    # @V 16384: 33536), plus FAVOR+'s: features 2 x 2md = 8192, state read + write 2 x 2m(d + H) = 8448
    assert c.flops_per_token_hoffmann == 3 * (329216 - 2 * 33536 + 2 * (8192 + 8448)) == 886272


def test_performer_shape_policy_and_validation():
    check_shape_policy("performer")
    assert shape_for_n(3e5, "performer") == shape_for_n(3e5, "gpt")  # the GPT's weights, the GPT's policy
    for bad in ({"n_features": 0}, {"chunk": 0}, {"feature_seed": -1}, {"feature_seed": True}, {"feature_seed": 1.5}):
        with pytest.raises(UserError):
            ModelConfig.make("performer", **bad)
    with pytest.raises(UserError):  # the GPT's own validation still applies
        ModelConfig.make("performer", d_model=30, n_head=4)
