"""Training throughput: our trainer against a plain eager nanoGPT-style loop, same GPT, same batches.

Three sizes (about 1e4, 1e5, 1e6 Kaplan non-embedding parameters, at least two layers as the Kaplan tiers
have them) plus the d_model 256 shape of the second target (N ~ 6.3e6: L8 d256 h4), context 256 (the tiers'),
vocab 4096, 16 sequences per step, fp32, CPU threads as torch sets them. Reports tokens/s of ours, of ours
with the v1 chunked loss (the algorithm before the single-exponential v2, kept here so that the speed-up is
measured in the same run), of the reference, their ratios, and achieved FLOP/s as a fraction of fp32 matmul
throughput measured in the same run, under both FLOP counts (Hoffmann et al. full count, and Kaplan's
6N + 6 L n_ctx d).
Run: nox -s bench -- -k train   (or pytest harness/benchmarks/bench_train.py -o python_files=bench_*.py
--benchmark-only -s). Results and history: results/bench/train_throughput.md.
"""

from __future__ import annotations

import math
import time
from unittest import mock

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness.data.stream import TokenData
from harness.models import ModelConfig, model_counts, shape_for_n
from harness.train import TrainConfig, train
from kernels import chunked

N_CTX, VOCAB, BATCH, STEPS = 256, 4096, 16, 12
SIZES = (1e4, 1e5, 1e6, 6.3e6)  # the last is shape_for_n's d_model 256 (L8 d256 h4)
RESULTS: dict = {}


# ------------------------------------------------------------------ reference: plain eager nanoGPT-style GPT
class RefBlock(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.h = h
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc, self.out = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
        self.register_buffer("mask", torch.tril(torch.ones(N_CTX, N_CTX)).bool())

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
        q, k, v = (z.view(B, T, self.h, C // self.h).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(C // self.h)
        att = att.masked_fill(~self.mask[:T, :T], float("-inf")).softmax(dim=-1)
        x = x + self.proj((att @ v).transpose(1, 2).reshape(B, T, C))
        return x + self.out(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class RefGPT(nn.Module):
    def __init__(self, L, d, h):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(VOCAB, d), nn.Embedding(N_CTX, d)
        self.blocks = nn.ModuleList(RefBlock(d, h) for _ in range(L))
        self.ln_f, self.head = nn.LayerNorm(d), nn.Linear(d, VOCAB, bias=False)

    def forward(self, idx, targets):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for b in self.blocks:
            x = b(x)
        logits = self.head(self.ln_f(x))
        return F.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1))


def reference_tokens_per_s(shape: dict, stream: np.ndarray) -> float:
    torch.manual_seed(0)
    model = RefGPT(shape["n_layer"], shape["d_model"], shape["n_head"])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    rng = np.random.default_rng(0)
    elapsed = 0.0
    for step in range(STEPS + 2):
        starts = rng.integers(0, len(stream) - N_CTX - 1, BATCH)
        w = torch.from_numpy(np.stack([stream[s : s + N_CTX + 1] for s in starts]).astype(np.int64))
        t0 = time.perf_counter()
        loss = model(w[:, :-1], w[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step >= 2:  # two warm-up steps, like ours (its first eval and step warm the caches)
            elapsed += time.perf_counter() - t0
    return STEPS * BATCH * N_CTX / elapsed


def _v1_loss_forward(ctx, hidden, weight, targets):
    """The chunked training loss as it was before v2 (logsumexp, then a second exponential; 512 rows)."""
    M = hidden.shape[0]
    grad_h, grad_w, total = torch.empty_like(hidden), torch.zeros_like(weight), hidden.new_zeros(())
    for i in range(0, M, 512):
        h, t = hidden[i : i + 512], targets[i : i + 512]
        logits = h @ weight.T
        lse = torch.logsumexp(logits, dim=1)
        total += (lse - logits.gather(1, t[:, None]).squeeze(1)).sum()
        p = logits.sub_(lse[:, None]).exp_()
        p[torch.arange(len(t)), t] -= 1.0
        grad_h[i : i + len(t)] = p @ weight
        grad_w.addmm_(p.T, h)
    ctx.save_for_backward(grad_h, grad_w)
    ctx.rows = M
    return total / M


def matmul_flops() -> float:
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    for _ in range(3):
        a @ b
    n, t0 = 20, time.perf_counter()
    for _ in range(n):
        a @ b
    return n * 2 * 1024**3 / (time.perf_counter() - t0)


@pytest.fixture(scope="module")
def stream():
    return np.random.default_rng(0).integers(1, VOCAB, 400_000).astype(np.uint16)


@pytest.fixture(scope="module")
def peak():
    return matmul_flops()


@pytest.mark.parametrize("n", SIZES, ids=lambda n: f"N{n:.0e}")
def test_train_throughput(benchmark, stream, peak, n):
    shape = shape_for_n(n, min_layers=2)
    data = TokenData(stream[:380_000], stream[380_000:], VOCAB)
    cfg = TrainConfig(
        model=ModelConfig.make(n_ctx=N_CTX, vocab_size=VOCAB, **shape),
        tokens=(STEPS + 2) * BATCH * N_CTX,
        batch_tokens=BATCH * N_CTX,
        eval_points=1,
        eval_tokens=N_CTX,
        lr=1e-3,
    )
    rec = benchmark.pedantic(lambda: train(cfg, None, data=data), rounds=1, iterations=1)
    ours = rec["timing"]["tokens_per_s"]
    with mock.patch.object(chunked._ChunkedLinearCrossEntropy, "forward", staticmethod(_v1_loss_forward)):
        v1 = train(cfg, None, data=data)["timing"]["tokens_per_s"]
    ref = reference_tokens_per_s(shape, stream)
    counts = model_counts(cfg.model)
    fh, fk = counts.flops_per_token_hoffmann, counts.flops_per_token_kaplan
    RESULTS[n] = (shape, counts.n_kaplan, ours, v1, ref, ours * fh / peak, ref * fh / peak, ours * fk / peak)
    benchmark.extra_info.update(tokens_per_s=ours, v1_tokens_per_s=v1, reference_tokens_per_s=ref, ratio=ours / ref)
    assert ours > 0 and v1 > 0 and ref > 0


def teardown_module():
    if not RESULTS:
        return
    print(f"\n\nfp32 matmul throughput (1024^3, {torch.get_num_threads()} threads): {matmul_flops() / 1e9:.1f} GFLOP/s")
    print("%mm = achieved FLOP/s / matmul FLOP/s; H = Hoffmann et al. App. F count, K = Kaplan 6N + 6 L n_ctx d")
    cols = ("N_kaplan", "shape", "ours tok/s", "v1 tok/s", "ref tok/s", "/v1", "/ref", "ours %mm H", "ref %mm H")
    widths = (9, 14, 11, 9, 10, 5, 5, 11, 10)
    print(" ".join(c.rjust(w) for c, w in zip(cols, widths, strict=True)), "ours %mm K".rjust(11))
    for s, nk, ours, v1, ref, fo, fr, fk in RESULTS.values():
        shp = f"L{s['n_layer']} d{s['d_model']} h{s['n_head']}"
        print(
            f"{nk:9.3g} {shp:>14} {ours:11.0f} {v1:9.0f} {ref:10.0f} {ours / v1:5.2f} {ours / ref:5.2f}"
            f" {100 * fo:10.1f}% {100 * fr:9.1f}% {100 * fk:10.1f}%"
        )
