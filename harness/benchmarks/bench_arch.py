"""Training throughput of every arena architecture next to the GPT at about the same Kaplan N, in one run.

Each architecture is built at ``shape_for(N_TARGET)`` and trained through the harness's own trainer (forward,
auxiliary losses, backward, clipping, AdamW) on the same random batches as a GPT of the same target N, the two
timed alternately step by step so that load on the machine hits both alike. Reported per architecture:
tokens/s, achieved FLOP/s under Hoffmann et al.'s App. F count (the count the arena compares architectures in;
sparse models count their active path) and the ratio to the GPT's FLOP/s. The arena's goal: every ratio at
least 0.5 on CPU. Byte-level vocabulary (256), as the arena's tiers use, context 128, 16 sequences per step,
fp32, one thread per process unless torch was told otherwise.

Run: nox -s bench -- -k arch  (or pytest harness/benchmarks/bench_arch.py -o python_files=bench_*.py
--benchmark-only -s). Results and history: results/bench/arch_throughput.md.
"""

from __future__ import annotations

import time

import pytest
import torch

from harness.models import ModelConfig, build_model, model_counts, shape_for_n

N_TARGET, N_CTX, VOCAB, BATCH, STEPS, WARMUP = 1e5, 128, 256, 16, 8, 2
ARCHS = (
    "transformer_pp", "lstm", "albert", "universal", "switch", "mos", "performer", "rwkv", "mamba", "hybrid",
    "mixer", "lightconv", "dynamicconv", "funnel",
)  # fmt: skip
SHAPE_OPTIONS = {"mixer": {"n_ctx": N_CTX}}  # the mixer's shape policy needs the context it mixes over
RESULTS: dict = {}


def _stepper(name: str):
    shape = shape_for_n(N_TARGET, name, **SHAPE_OPTIONS.get(name, {}))
    cfg = ModelConfig.make(name, n_ctx=N_CTX, vocab_size=VOCAB, kernels="torch", **shape)
    torch.manual_seed(0)
    model = build_model(cfg)
    opt = torch.optim.AdamW(model.param_groups(0.1), lr=1e-3, betas=(0.9, 0.99))
    g = torch.Generator().manual_seed(0)

    def step() -> float:
        w = torch.randint(0, VOCAB, (BATCH, N_CTX + 1), generator=g)
        t0 = time.perf_counter()
        loss, aux = model.training_loss(w[:, :-1], w[:, 1:])
        (loss + sum(aux.values())).backward() if aux else loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t0

    return step, model_counts(cfg), shape


@pytest.mark.parametrize("name", ARCHS)
def test_arch_throughput(benchmark, name):
    arch, counts, shape = _stepper(name)
    gpt, gcounts, _ = _stepper("gpt")
    times = {"arch": 0.0, "gpt": 0.0}

    def run():
        for i in range(WARMUP + STEPS):
            a, b = arch(), gpt()
            if i >= WARMUP:
                times["arch"] += a
                times["gpt"] += b

    benchmark.pedantic(run, rounds=1, iterations=1)
    tokens = STEPS * BATCH * N_CTX
    tps, gtps = tokens / times["arch"], tokens / times["gpt"]
    flops, gflops = tps * counts.flops_per_token_hoffmann, gtps * gcounts.flops_per_token_hoffmann
    RESULTS[name] = (shape, counts.n_kaplan, gcounts.n_kaplan, tps, gtps, flops, gflops)
    benchmark.extra_info.update(tokens_per_s=tps, gpt_tokens_per_s=gtps, flop_ratio=flops / gflops)
    assert tps > 0 and gtps > 0


def teardown_module():
    if not RESULTS:
        return
    print(
        f"\n\nN target {N_TARGET:.0e}, n_ctx {N_CTX}, vocab {VOCAB}, batch {BATCH}, {torch.get_num_threads()} thread(s)"
    )
    print(
        f"{'architecture':<15}{'N_kaplan':>9} {'gpt N':>8}{'tok/s':>9}{'gpt tok/s':>10}{'GFLOP/s':>9}{'gpt':>7}  ratio"
    )
    for name, (_, nk, gnk, tps, gtps, f, gf) in RESULTS.items():
        print(f"{name:<15}{nk:9.3g} {gnk:8.3g}{tps:9.0f}{gtps:10.0f}{f / 1e9:9.2f}{gf / 1e9:7.2f}  {f / gf:5.2f}")
