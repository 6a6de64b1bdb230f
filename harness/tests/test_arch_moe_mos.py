"""The Switch Transformer ("switch") and the Mixture-of-Softmaxes GPT ("mos"): the arena's checks, hand counts,
and what is special to each (the load-balancing loss and routing; the mixture's loss and its chunked gradient)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from harness.errors import UserError
from harness.models import ModelConfig, build_model, model_counts, shape_for_n
from harness.models import mos as mos_module
from harness.models.switch import Switch, SwitchFFN
from harness.tests.arch_checks import check_causal, check_counts, check_shape_policy, check_trains, periodic_stream

TINY = dict(n_layer=2, d_model=32, n_head=2, n_ctx=16, vocab_size=64)

# measure.py warns when the FLOP counter sees fewer than 2 FLOPs per non-embedding weight: a sparse model's
# forward touches one expert of n_expert, so that is expected here (its analytic count is of the active path)
sparse_warning = pytest.mark.filterwarnings("ignore:Switch. the FLOP counter saw:UserWarning")


# ------------------------------------------------------------------------------------------------ switch
@pytest.mark.parametrize(
    "extra",
    [{}, {"moe_every": 1, "capacity_factor": 1.25, "pos": "rotary", "tie_weights": True, "bias": False}],
)
def test_switch_trains(extra):
    check_trains("switch", **TINY, **extra)


@pytest.mark.parametrize("extra", [{}, {"moe_every": 1, "pos": "rotary", "n_expert": 3}])
def test_switch_causal_without_capacity(extra):
    # routing is per token, so the model is causal when no token is dropped (capacity_factor <= 0, the
    # default); with a capacity, tokens compete for places across the batch, see test_capacity_drops_overflow
    check_causal("switch", **TINY, **extra)


@sparse_warning
@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"moe_every": 1, "n_expert": 3},
        {"n_layer": 3, "moe_every": 2, "tie_weights": True, "bias": False, "pos": "rotary", "mlp_ratio": 2},
    ],
)
def test_switch_counts_match_module(extra):
    check_counts("switch", **{**TINY, **extra})


def test_switch_shape_policy():
    # n_kaplan counts every expert, so the policy (whose n is the ACTIVE Kaplan N) is checked on n_expert = 1,
    # where the two agree up to the router, and on the active N at the default n_expert = 8
    check_shape_policy("switch", n_expert=1)
    for n in (1e4, 1e5, 1e6):
        shape = shape_for_n(n, "switch")
        assert shape["n_expert"] == 8 and shape["d_model"] % 8 == 0
        args = ModelConfig.make("switch", **shape).args
        assert 1 / 1.6 < Switch.active_kaplan(args) / n < 1.6
        gpt = shape_for_n(n, "gpt")
        assert {k: shape[k] for k in gpt} == gpt  # the dense GPT's shape for the same active N


def test_switch_counts_by_hand():
    # L=2, d=16, H=2, T=16, V=64, E=4, mlp_ratio 4, biases, learned positions, untied; moe_every=2: layer 0 is
    # a Switch layer, layer 1 dense. Attention weights 4d^2 = 1024, one MLP 2*4d^2 = 2048, router dE = 64.
    cfg = ModelConfig.make("switch", n_layer=2, d_model=16, n_head=2, n_ctx=16, vocab_size=64, n_expert=4)
    c = model_counts(cfg)
    assert c.n_kaplan == 2 * 1024 + 2048 + (4 * 2048 + 64) == 12352  # ALL experts
    # biases: attention 3d + d = 64, MLP 4d + d = 80; two LayerNorms per layer 2 * 2d = 64; final LN 32
    assert c.n_non_embedding == 2 * (1024 + 64 + 64) + (2048 + 80) + (4 * (2048 + 80) + 64) + 32 == 13040
    assert c.n_total == 13040 + 64 * 16 + 16 * 16 + 64 * 16 == 15344  # wte + wpe + head
    assert c.n_active == 15344 - 3 * (2048 + 80) == 8960  # three of the four experts idle for each token
    # the active path is the dense GPT of the same shape plus the router
    gpt = model_counts(ModelConfig.make("gpt", n_layer=2, d_model=16, n_head=2, n_ctx=16, vocab_size=64))
    assert c.n_active == gpt.n_total + 64
    assert c.flops_per_token_kaplan == 6 * (2 * (1024 + 2048) + 64) + 6 * 2 * 16 * 16 == 40320
    # Hoffmann App. F forward: embeddings 2Vd = 2048; per layer qkv 1536, logits 2Td = 512, softmax 3HT = 96,
    # @V 512, out 512, MLP (one expert) 4096 -> 7264; router 2dE = 128; output logits 2dV = 2048
    assert c.flops_per_token_hoffmann == 3 * (2048 + 2 * 7264 + 128 + 2048) == 56256
    assert c.flops_per_token_hoffmann == gpt.flops_per_token_hoffmann + 3 * 128


def _ffn_with_router(weight, n_expert, capacity_factor=0.0, d=2):
    torch.manual_seed(0)
    ffn = SwitchFFN(d, 1, n_expert, True, capacity_factor)
    with torch.no_grad():
        ffn.router.weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
        for e in ffn.experts:  # non-zero outputs everywhere, so dropped (zero) rows are unambiguous
            e.proj.bias.fill_(1.0)
    return ffn


def test_aux_loss_on_a_known_routing():
    # E = 2, router = identity: tokens (1,0) x3 go to expert 0 with p = (e/(e+1), 1/(e+1)), (0,1) to expert 1
    ffn = _ffn_with_router([[1.0, 0.0], [0.0, 1.0]], 2)
    x = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])
    y, aux, frac = ffn(x)
    hi, lo = math.e / (math.e + 1), 1 / (math.e + 1)
    f = (3 / 4, 1 / 4)
    P = ((3 * hi + lo) / 4, (3 * lo + hi) / 4)
    assert frac.tolist() == [0.75, 0.25]
    assert aux.item() == pytest.approx(2 * (f[0] * P[0] + f[1] * P[1]), rel=1e-6)  # eq. 4 / alpha
    assert aux.item() > 1  # above the balanced minimum 1 (alpha = 1 here)
    # each output is the chosen expert's, scaled by its gate probability
    assert torch.allclose(y[0, 0], hi * ffn.experts[0](x[0, 0]))
    assert torch.allclose(y[0, 3], hi * ffn.experts[1](x[0, 3]))


def test_aux_loss_with_uniform_router_logits():
    # zero router: P_i = 1/E for every token, so alpha * E * sum_i f_i / E = alpha whatever f; argmax ties go to
    # expert 0, which then takes every token
    torch.manual_seed(0)
    cfg = ModelConfig.make("switch", **TINY, moe_every=1, n_expert=4, aux_alpha=0.03)
    model = build_model(cfg)
    with torch.no_grad():
        for block in model.blocks:
            block.ffn.router.weight.zero_()
    x, y = periodic_stream(64, 2, 16)
    _, aux = model.training_loss(x, y)
    assert aux["load_balance"].item() == pytest.approx(2 * 0.03, rel=1e-6)  # two Switch layers, summed
    assert model.expert_fractions.tolist() == [[1.0, 0.0, 0.0, 0.0]] * 2


def test_aux_loss_in_the_model_equals_eq4_from_its_router_logits():
    torch.manual_seed(1)
    cfg = ModelConfig.make("switch", **TINY, moe_every=1, n_expert=4)
    model = build_model(cfg)
    seen = []
    for block in model.blocks:
        block.ffn.router.register_forward_hook(lambda mod, inp, out: seen.append(out.detach()))
    x, y = periodic_stream(64, 3, 16)
    loss, aux = model.training_loss(x, y)
    assert set(aux) == {"load_balance"} and aux["load_balance"].item() > 0
    assert torch.equal(loss, model(x, y))  # forward is the cross-entropy alone
    expect = 0.0
    for logits in seen[:2]:
        p = torch.softmax(logits, -1)
        f = torch.bincount(p.argmax(-1), minlength=4).float() / len(p)
        expect += 0.01 * 4 * float((f * p.mean(0)).sum())
    assert aux["load_balance"].item() == pytest.approx(expect, rel=1e-5)
    fr = model.expert_fractions
    assert fr.shape == (2, 4) and torch.allclose(fr.sum(1), torch.ones(2))


def test_dispatch_equals_a_per_token_reference():
    torch.manual_seed(0)
    ffn = SwitchFFN(16, 2, 5, True, 0.0)
    with torch.no_grad():
        ffn.router.weight.normal_(0, 1.0)
    x = torch.randn(3, 7, 16)
    y, _, frac = ffn(x)
    probs = torch.softmax(ffn.router(x), -1)
    for b in range(3):
        for t in range(7):
            e = int(probs[b, t].argmax())
            assert torch.allclose(y[b, t], probs[b, t, e] * ffn.experts[e](x[b, t]), atol=1e-6)
    assert (frac > 0).sum() >= 3  # the reference covered several experts


def test_capacity_drops_overflow():
    # zero router: every token goes to expert 0. Capacity ceil(1.0 * 4 / 2) = 2: the first two tokens in
    # (batch, time) order are kept, the other two get 0 and pass the layer through the residual only
    x = torch.tensor([[[1.0, 2.0], [3.0, -1.0]], [[0.5, 0.5], [-2.0, 1.0]]])
    ffn = _ffn_with_router([[0.0, 0.0], [0.0, 0.0]], 2, capacity_factor=1.0)
    y, _, frac = ffn(x)
    assert frac.tolist() == [1.0, 0.0]  # f counts the routing before dropping
    assert torch.allclose(y[0], 0.5 * ffn.experts[0](x[0]))  # gate 1/2
    assert torch.equal(y[1], torch.zeros(2, 2))  # sequence 1 lost its places to sequence 0
    ffn.capacity_factor = 0.0  # no capacity: nothing dropped
    assert torch.allclose(ffn(x)[0][1], 0.5 * ffn.experts[0](x[1]))
    ffn.capacity_factor = 2.0  # capacity 4 = every token
    assert torch.count_nonzero(ffn(x)[0].abs().sum(-1)) == 4


def test_aux_loss_rebalances_a_collapsed_router():
    # start from a router that sends every token to expert 0 (a LayerNorm bias along u and router row 0
    # along u), then train: without the aux loss the routing stays collapsed, with it it spreads out
    maxima = {}
    for alpha in (0.0, 0.1):
        torch.manual_seed(0)
        shape = dict(n_layer=1, d_model=32, n_head=2, n_ctx=32, vocab_size=64, n_expert=4, aux_alpha=alpha)
        model = build_model(ModelConfig.make("switch", **shape))
        u = torch.ones(32) / math.sqrt(32)
        with torch.no_grad():
            model.blocks[0].ln2.bias.copy_(u)
            model.blocks[0].ffn.router.weight[0] += 2.0 * u
        x, y = periodic_stream(64, 8, 32, period=7)
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
        for step in range(60):
            loss, aux = model.training_loss(x, y)
            if step == 0:
                assert model.expert_fractions.max().item() == 1.0  # collapsed
            opt.zero_grad()
            (loss + aux["load_balance"]).backward()
            opt.step()
        maxima[alpha] = model.expert_fractions.max().item()
    assert maxima[0.0] > 0.95
    assert maxima[0.1] < 0.5  # 0.26 measured; balanced would be 0.25


@pytest.mark.parametrize(
    "field,value",
    [
        ("n_expert", 0),
        ("moe_every", 0),
        ("capacity_factor", "1"),
        ("capacity_factor", float("nan")),
        ("capacity_factor", True),
        ("aux_alpha", -0.1),
        ("n_head", 3),
        ("pos", "alibi"),
        ("bias", 1),
    ],
)
def test_switch_bad_args(field, value):
    with pytest.raises(UserError, match=field if field != "n_head" else "multiple"):
        ModelConfig.make("switch", **{field: value})


def test_switch_bad_shape_option():
    with pytest.raises(UserError, match="n_expert"):
        shape_for_n(1e5, "switch", n_expert=0)
    with pytest.raises(UserError, match="aspect"):
        shape_for_n(1e5, "switch", aspect=0)


# ------------------------------------------------------------------------------------------------ mos
@pytest.mark.parametrize("extra", [{}, {"n_softmax": 2, "pos": "rotary", "tie_weights": True, "bias": False}])
def test_mos_trains(extra):
    check_trains("mos", **TINY, **extra)


def test_mos_causal():
    check_causal("mos", **TINY)


@pytest.mark.parametrize(
    "extra", [{}, {"n_softmax": 1}, {"n_softmax": 3, "tie_weights": True, "bias": False, "pos": "rotary"}]
)
def test_mos_counts_match_module(extra):
    check_counts("mos", **TINY, **extra)


def test_mos_shape_policy():
    check_shape_policy("mos")
    check_shape_policy("mos", n_softmax=15)
    assert shape_for_n(1e5, "mos")["n_softmax"] == 4


def test_mos_counts_by_hand():
    # the GPT of test_gpt_counts_by_hand (L=2, d=64, H=2, T=128, V=256) with K = 4 components:
    # W_pi K d = 256 and W_k K d^2 = 16384 weights, b_k K d = 256
    c = model_counts(ModelConfig.make("mos", n_layer=2, d_model=64, n_head=2, n_ctx=128, vocab_size=256))
    assert c.n_kaplan == 98304 + 256 + 16384 == 114944
    assert c.n_non_embedding == 100096 + 256 + 16384 + 256 == 116992
    assert c.n_total == 116992 + 256 * 64 + 128 * 64 + 256 * 64 == 157952
    assert c.flops_per_token_kaplan == 6 * 114944 + 6 * 2 * 128 * 64 == 787968
    # forward: embeddings 32768 + layers 2 * 131840 + prior 2dK = 512 + contexts 2dKd = 32768 + K output
    # logits 4 * 2dV = 131072
    assert c.flops_per_token_hoffmann == 3 * (32768 + 2 * 131840 + 512 + 32768 + 4 * 32768) == 1382400


def _naive_mixture(model, idx):
    """log p (B, T, V) of the mixture in probability space, straight from the paper's formula."""
    h = model.hidden(idx)
    pi = torch.softmax(model.prior(h), -1)  # (B, T, K)
    hk = torch.tanh(model.latent(h)).view(*h.shape[:2], model.config.n_softmax, -1)
    p = (pi.unsqueeze(-1) * torch.softmax(hk @ model.head_weight.T, -1)).sum(2)
    return p.log()


@pytest.mark.parametrize("tie", [False, True])
def test_mos_loss_and_gradients_equal_the_paper_formula(tie, monkeypatch):
    # chunks of 3 tokens (the last one shorter) exercise the chunked loss and its forward-pass gradients
    monkeypatch.setattr(mos_module, "_chunk_tokens", lambda *a: 3)
    torch.manual_seed(0)
    model = build_model(ModelConfig.make("mos", **{**TINY, "n_layer": 1}, n_softmax=3, tie_weights=tie))
    with torch.no_grad():  # away from the near-uniform init, so the components differ
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x, y = periodic_stream(64, 2, 16)
    y = torch.randint(0, 64, y.shape)  # arbitrary targets
    params = list(model.parameters())
    ref = -_naive_mixture(model, x).gather(-1, y.unsqueeze(-1)).squeeze(-1)
    ref_grads = torch.autograd.grad(ref.mean(), params)
    loss = model(x, y)
    grads = torch.autograd.grad(loss, params)
    assert loss.item() == pytest.approx(ref.mean().item(), rel=1e-5)
    for g, r in zip(grads, ref_grads, strict=True):
        assert torch.allclose(g, r, atol=1e-6, rtol=1e-4)
    with torch.no_grad():
        assert torch.allclose(model.token_losses(x, y), ref, atol=1e-5)  # the chunked, no-grad path
        assert model(x, y).item() == pytest.approx(loss.item(), rel=1e-6)  # evaluation's forward
        logits = model.logits(x)
        assert torch.allclose(logits, _naive_mixture(model, x), atol=1e-5)
        assert torch.allclose(torch.logsumexp(logits, -1), torch.zeros(2, 16), atol=1e-5)  # log-probabilities
    assert torch.allclose(model.token_losses(x, y), ref, atol=1e-5)  # the differentiable per-token path
    assert torch.allclose(F.cross_entropy(logits.view(-1, 64), y.view(-1)), loss, atol=1e-5)


def test_mos_shares_the_output_projection():
    model = build_model(ModelConfig.make("mos", **TINY, tie_weights=True))
    assert model.head is None and model.head_weight is model.wte.weight
    assert model.latent.out_features == 4 * 32 and model.prior.bias is None


@pytest.mark.parametrize("field,value", [("n_softmax", 0), ("n_softmax", 1.5), ("n_head", 5)])
def test_mos_bad_args(field, value):
    with pytest.raises(UserError, match=field if field != "n_head" else "multiple"):
        ModelConfig.make("mos", **{field: value})


def test_mos_bad_shape_option():
    with pytest.raises(UserError, match="n_softmax"):
        shape_for_n(1e5, "mos", n_softmax=0)
