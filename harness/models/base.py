"""What the trainer needs from a model: :class:`LanguageModel`, its counts and its (optional) hooks.

An architecture is one module with three things:

* ``Args``: a frozen dataclass extending :class:`~harness.models.config.ModelArgs` (its shape and options);
* ``counts(args)``: its parameter and FLOP counts, analytically from ``args``, under both conventions:

  - ``n_kaplan``: Kaplan et al. (2020) non-embedding parameters N (weight matrices of the blocks, no biases,
    norms or embeddings; ``12 n_layer d_model^2`` for the GPT);
  - ``n_non_embedding``: the exact count of non-embedding parameters (biases and norms included);
  - ``n_total``: every parameter counted once (embeddings included; Hoffmann et al. 2022 "Chinchilla" N);
  - ``n_active``: parameters one token passes through (sparse models; dense ones leave it to ``n_total``);
  - ``flops_per_token_kaplan``: Kaplan's training FLOPs per token ``6 N + 6 n_layer n_ctx d_model``;
  - ``flops_per_token_hoffmann``: Hoffmann et al. Appendix F, full forward count (embeddings, attention
    logits, softmax, output logits; multiply-accumulate = 2 FLOPs) times 3 (backward = 2 x forward);

* ``forward(idx, targets)``: the mean next-token cross-entropy in nats.

Optional, with defaults here: ``shape_for(n, **options)`` (a shape for a target N, used by sweeps),
``param_groups(weight_decay)`` (which parameters are decayed), ``training_loss(idx, targets)`` (the
cross-entropy plus named auxiliary terms, e.g. a router's load-balancing loss, each logged on its own), and
``token_losses(idx, targets)`` (per-position loss for evaluation) and ``logits(idx)`` (causality checks, FLOP
measurement). The trainer knows no model by name.
"""

from __future__ import annotations

import inspect
from typing import ClassVar

import torch
from torch import nn

from .config import ModelArgs, ModelCounts
from .ops import linear_cross_entropy


class KernelOp(nn.Module):
    """A submodule routed through the ``kernels`` switch (e.g. a norm). Its ``kernels`` is the *resolved*
    implementation, ``"triton"`` or ``"torch"``, and follows :attr:`LanguageModel.kernels_used`."""

    kernels: str = "torch"


class LanguageModel(nn.Module):
    """Base class of every registered model.

    ``kernels_used`` is the resolved kernel implementation (``"triton"`` or ``"torch"``) of the whole model:
    a built model runs PyTorch ops until it is set, usually to ``resolve_kernels(args.kernels, device)``
    (the trainer does this), and setting it also switches every :class:`KernelOp` submodule.
    """

    Args: ClassVar[type[ModelArgs]] = ModelArgs
    registry_name: ClassVar[str]
    config: ModelArgs
    _kernels_used: str = "torch"

    @property
    def kernels_used(self) -> str:
        return self._kernels_used

    @kernels_used.setter
    def kernels_used(self, value: str) -> None:
        if value not in ("triton", "torch"):
            raise ValueError(f"kernels_used is a resolved setting, 'triton' or 'torch', not {value!r}")
        self._kernels_used = value
        for m in self.modules():
            if isinstance(m, KernelOp):
                m.kernels = value

    # ------------------------------------------------------------------------------ required
    @classmethod
    def counts(cls, args: ModelArgs) -> ModelCounts:  # pragma: no cover - abstract
        raise NotImplementedError(f"{cls.__name__} does not define counts(args)")

    def embedding_parameters(self) -> list[nn.Parameter]:  # pragma: no cover - abstract
        """The parameters that do not count as non-embedding (token/position embeddings, output projection)."""
        raise NotImplementedError

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    # ------------------------------------------------------------------------------ optional hooks
    @classmethod
    def shape_for(cls, n: float, **options) -> dict[str, int]:
        """Shape fields giving about ``n`` Kaplan non-embedding parameters (sweeps with a target N need it)."""
        raise NotImplementedError(f"{cls.__name__} has no shape policy (shape_for); give its shape explicitly")

    @classmethod
    def shape_options(cls) -> tuple[str, ...]:
        """The keyword options :meth:`shape_for` takes (sweep ``[grid]`` keys beyond N, D and seeds)."""
        params = list(inspect.signature(cls.shape_for).parameters.values())[1:]  # after n
        return tuple(p.name for p in params if p.kind is p.KEYWORD_ONLY or p.kind is p.POSITIONAL_OR_KEYWORD)

    def param_groups(self, weight_decay: float) -> list[dict]:
        """AdamW parameter groups. Default: matrices (and embeddings) decayed; vectors (biases, norm gains)
        not, as in GPT-2 / nanoGPT."""
        params = list(self.parameters())
        return [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]

    def training_loss(self, idx: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The cross-entropy the trainer reports and the auxiliary terms it adds to it before ``backward``
        (name -> scalar tensor, already weighted). Default: ``forward`` and no auxiliary terms."""
        return self(idx, targets), {}

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        """Next-token logits (B, T, vocab_size), for evaluation, causality checks and FLOP measurement. The
        default works for a model with ``hidden(idx)`` and ``head_weight``, as :meth:`token_losses` does."""
        hidden, weight = getattr(self, "hidden", None), getattr(self, "head_weight", None)
        if hidden is None or weight is None:
            raise NotImplementedError(f"{type(self).__name__} has no logits(idx)")
        return torch.nn.functional.linear(hidden(idx), weight)

    def token_losses(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy (nats) of every target token, shaped like ``targets`` (B, T); its mean is ``forward``.

        For evaluation only (the trainer calls it under ``torch.no_grad()`` in eval mode). The default works
        for a model with ``hidden(idx)`` (final hidden states) and ``head_weight`` (the output projection, as
        the GPT and the LSTM have) and uses plain PyTorch for the projection and loss; other models override
        it, or the trainer records no per-position loss for them.
        """
        hidden, weight = getattr(self, "hidden", None), getattr(self, "head_weight", None)
        if hidden is None or weight is None:
            raise NotImplementedError(f"{type(self).__name__} has no per-token loss")
        from .ops import token_cross_entropy

        return token_cross_entropy(hidden(idx), weight, None, targets)

    # Counts measured on the built module (tests check them against the analytic ``counts``).
    def measured_total_params(self) -> int:
        return sum(p.numel() for p in self.parameters())  # parameters() yields tied weights once

    def measured_non_embedding_params(self) -> int:
        emb = {id(p) for p in self.embedding_parameters()}
        return sum(p.numel() for p in self.parameters() if id(p) not in emb)


class EmbeddingHeadLM(LanguageModel):
    """The harness's own architectures: a token embedding ``wte``, final hidden states from ``hidden(idx)``, and
    a bias-free output layer ``head`` (None: tied to ``wte``). Gives them :attr:`head_weight` and the fused loss
    as ``forward``. A plug-in subclassing :class:`LanguageModel` directly gets neither, so nothing is guessed
    about its head (its per-position loss, for one, is then recorded as absent)."""

    @property
    def head_weight(self) -> torch.Tensor:
        return self.wte.weight if self.head is None else self.head.weight

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return linear_cross_entropy(self.hidden(idx), self.head_weight, None, targets, self.kernels_used)
