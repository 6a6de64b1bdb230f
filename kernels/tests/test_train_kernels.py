"""The trainer's kernel switch: "auto" means the Triton kernels on CUDA when Triton imports (device mocked:
these run on CPU), the resolved setting reaches every LayerNorm and the loss, and the run record keeps it."""

from __future__ import annotations

import pytest
import torch

import kernels.ops
from harness.errors import UserError
from harness.models import ModelConfig, build_model, resolve_kernels
from harness.models.gpt import LayerNorm


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
    with pytest.raises(UserError, match="CUDA"):
        resolve_kernels("triton", "cpu")


@pytest.mark.usefixtures("no_triton")
def test_auto_falls_back_without_triton_and_triton_refuses():
    assert resolve_kernels("auto", "cuda") == "torch"
    with pytest.raises(UserError, match="Triton is not importable"):
        resolve_kernels("triton", "cuda")


@pytest.mark.parametrize("name", ["gpt", "lstm"])
def test_resolved_setting_reaches_every_layer_norm(name):
    m = build_model(ModelConfig(name=name, n_layer=2, d_model=16, n_head=2, n_ctx=8, vocab_size=32))
    norms = [mod for mod in m.modules() if isinstance(mod, LayerNorm)]
    assert norms and m.kernels_used == "torch" and {n.kernels for n in norms} == {"torch"}
    m.kernels_used = "triton"
    assert {n.kernels for n in norms} == {"triton"}
    with pytest.raises(ValueError):
        m.kernels_used = "auto"  # only resolved settings


def test_triton_model_calls_the_kernels_on_cuda_tensors(monkeypatch):
    """With kernels_used="triton", the GPT sends its LayerNorms and loss to kernels.ops for CUDA tensors
    (is_cuda faked, the kernels replaced by recording stand-ins; the real ones are tested elsewhere)."""
    import harness.models.ops as hops

    calls = []

    class FakeOps:
        @staticmethod
        def layer_norm(x, w, b, eps):
            calls.append("layer_norm")
            return torch.nn.functional.layer_norm(x, (x.shape[-1],), w, b, eps)

        @staticmethod
        def linear_cross_entropy(h, w, t, bias=None):
            calls.append("linear_cross_entropy")
            return torch.nn.functional.cross_entropy(h @ w.T, t)

    monkeypatch.setattr(hops, "_kernel_ops", lambda: FakeOps)
    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda self: True))
    m = build_model(ModelConfig(n_layer=2, d_model=16, n_head=2, n_ctx=8, vocab_size=32))
    m.kernels_used = "triton"
    idx = torch.randint(0, 32, (2, 8))
    m(idx, idx)
    assert calls.count("layer_norm") == 5 and calls.count("linear_cross_entropy") == 1  # 2 per block + final


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
