"""The trainer's kernel switch: ``resolve_kernels`` is ``kernels.ops.resolve_backend`` with UserErrors ("auto"
means the Triton kernels on CUDA when Triton imports; device mocked: these run on CPU), the resolved setting
reaches every LayerNorm and the loss, a "triton" model really runs the kernels (on CPU through the Triton
interpreter), and the run record keeps the setting.

Lives in harness/tests, not kernels/tests: it tests the harness's use of the kernels, and ``kernels/`` imports
nothing from the harness."""

from __future__ import annotations

import importlib.util

import pytest
import torch

import kernels.ops
from harness.errors import UserError
from harness.models import ModelConfig, build_model, resolve_kernels
from harness.models.layers import LayerNorm


@pytest.fixture
def no_triton(monkeypatch):
    monkeypatch.setattr(kernels.ops, "triton_available", lambda: False)


@pytest.fixture
def with_triton(monkeypatch):
    monkeypatch.setattr(kernels.ops, "triton_available", lambda: True)


@pytest.mark.usefixtures("with_triton")
def test_auto_is_triton_on_cuda_when_triton_imports():
    assert resolve_kernels("auto", "cuda") == "triton"
    assert resolve_kernels("auto", torch.device("cuda", 0)) == "triton"
    assert resolve_kernels("triton", "cuda") == "triton"
    assert resolve_kernels("torch", "cuda") == "torch"
    assert resolve_kernels("auto", "cpu") == "torch"


@pytest.mark.usefixtures("with_triton")
@pytest.mark.parametrize("interpret", ["0", "1"])
@pytest.mark.parametrize(
    ("setting", "device"), [("triton", "cpu"), ("triton", "meta"), ("auto", "cpu"), ("torch", "cpu"), ("cuda", "cpu")]
)
def test_resolve_kernels_is_the_kernels_rule_with_user_errors(setting, device, interpret, monkeypatch):
    """One rule: whatever kernels.ops.resolve_backend answers, resolve_kernels answers too, and each of its
    errors (KernelUnavailable, ValueError) becomes a UserError with the same message."""
    monkeypatch.setenv("TRITON_INTERPRET", interpret)
    try:
        want = kernels.ops.resolve_backend(setting, device)
    except (kernels.ops.KernelUnavailable, ValueError) as exc:
        with pytest.raises(UserError) as got:
            resolve_kernels(setting, device)
        assert str(got.value) == str(exc)
    else:
        assert resolve_kernels(setting, device) == want


@pytest.mark.usefixtures("with_triton")
def test_triton_on_cpu_needs_the_interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(UserError, match="TRITON_INTERPRET=1"):
        resolve_kernels("triton", "cpu")


@pytest.mark.usefixtures("no_triton")
def test_auto_falls_back_without_triton_and_triton_refuses():
    assert resolve_kernels("auto", "cuda") == "torch"
    with pytest.raises(UserError, match="Triton is not importable"):
        resolve_kernels("triton", "cuda")


@pytest.mark.parametrize("name", ["gpt", "lstm"])
def test_resolved_setting_reaches_every_layer_norm(name):
    heads = {"n_head": 2} if name == "gpt" else {}  # the LSTM has no heads
    m = build_model(ModelConfig.make(name=name, n_layer=2, d_model=16, n_ctx=8, vocab_size=32, **heads))
    norms = [mod for mod in m.modules() if isinstance(mod, LayerNorm)]
    assert norms and m.kernels_used == "torch" and {n.kernels for n in norms} == {"torch"}
    m.kernels_used = "triton"
    assert {n.kernels for n in norms} == {"triton"}
    with pytest.raises(ValueError):
        m.kernels_used = "auto"  # only resolved settings


def test_triton_model_sends_its_norms_and_loss_to_kernels_ops(monkeypatch):
    """With kernels_used="triton", the GPT sends every LayerNorm and its loss to kernels.ops with
    backend="triton" (the kernels replaced by recording stand-ins; the real ones are tested below and in
    kernels/tests)."""
    calls = []

    def fake_layer_norm(x, w, b, eps=1e-5, backend="auto"):
        calls.append(("layer_norm", backend))
        return torch.nn.functional.layer_norm(x, (x.shape[-1],), w, b, eps)

    def fake_linear_cross_entropy(h, w, t, bias=None, backend="auto"):
        calls.append(("linear_cross_entropy", backend))
        return torch.nn.functional.cross_entropy(h.reshape(-1, h.shape[-1]) @ w.T, t.reshape(-1))

    monkeypatch.setattr(kernels.ops, "layer_norm", fake_layer_norm)
    monkeypatch.setattr(kernels.ops, "linear_cross_entropy", fake_linear_cross_entropy)
    m = build_model(ModelConfig.from_dict({"n_layer": 2, "d_model": 16, "n_head": 2, "n_ctx": 8, "vocab_size": 32}))
    m.kernels_used = "triton"
    idx = torch.randint(0, 32, (2, 8))
    m(idx, idx)
    # 2 per block + final
    assert calls == [("layer_norm", "triton")] * 5 + [("linear_cross_entropy", "triton")]


@pytest.fixture
def triton_device(monkeypatch) -> torch.device:
    """Where a "triton" model can run in this process: CUDA if present, else CPU through the Triton interpreter
    (TRITON_INTERPRET=1 set for this test; it works if nothing imported Triton without it before, as when
    kernels/tests/conftest.py has set it for the session)."""
    if importlib.util.find_spec("triton") is None:
        pytest.skip("triton is not installed (pip install 'scaling-harness[kernels]')")
    if torch.cuda.is_available():
        return torch.device("cuda")
    monkeypatch.setenv("TRITON_INTERPRET", "1")  # before Triton is first imported (triton_available imports it)
    try:
        kernels.ops.resolve_backend("triton", "cpu")
    except kernels.ops.KernelUnavailable as exc:
        pytest.skip(str(exc))
    return torch.device("cpu")


@pytest.mark.parametrize("name", ["gpt", "lstm"])
def test_triton_model_matches_the_torch_model(name, triton_device):
    """The same model with kernels_used "triton" (the real kernels) and "torch": the same loss and gradients
    up to fp32 rounding, and the loss really comes from the Triton linear cross-entropy."""
    fields = {"name": name, "n_layer": 2, "d_model": 16, "n_ctx": 8, "vocab_size": 50}
    if name == "gpt":
        fields["n_head"] = 2
    m = build_model(ModelConfig.from_dict(fields)).to(triton_device)
    assert resolve_kernels("triton", triton_device) == "triton"
    g = torch.Generator().manual_seed(0)
    idx, tgt = (torch.randint(0, 50, (2, 8), generator=g).to(triton_device) for _ in range(2))
    results = {}
    for kernels_used in ("torch", "triton"):
        m.kernels_used = kernels_used
        m.zero_grad(set_to_none=True)
        loss = m(idx, tgt)
        loss.backward()
        results[kernels_used] = (loss.detach(), {k: p.grad.clone() for k, p in m.named_parameters()}, loss.grad_fn)
    assert type(results["triton"][2]).__name__.startswith("_LinearCrossEntropy")  # kernels.cross_entropy
    assert type(results["torch"][2]).__name__.startswith("_ChunkedLinearCrossEntropy")  # kernels.chunked
    torch.testing.assert_close(results["triton"][0], results["torch"][0], rtol=1e-5, atol=1e-5)
    for k, grad in results["torch"][1].items():
        torch.testing.assert_close(results["triton"][1][k], grad, rtol=1e-4, atol=1e-6, msg=lambda m, k=k: f"{k}: {m}")


def test_trainer_resolves_and_records_the_setting(tmp_path, monkeypatch):
    import harness.train as train_mod
    from harness.data.stream import prepare_documents, read_text_folder
    from harness.tests.train_helpers import tiny_config, write_text_folder

    seen = []
    real = train_mod.resolve_kernels

    def spy(setting, device):
        seen.append((setting, device))
        return real(setting, device)

    monkeypatch.setattr(train_mod, "resolve_kernels", spy)
    docs = read_text_folder(write_text_folder(tmp_path / "txt", n_docs=24))
    data = prepare_documents(docs, tmp_path / "byte", tokenizer="byte", val_fraction=0.15)
    rec = train_mod.train(tiny_config(), tmp_path / "out", data=data, threads=1)
    assert seen == [("auto", "cpu")]
    assert rec["resolved"]["kernels"] == "torch" and rec["config"]["model"]["kernels"] == "auto"
