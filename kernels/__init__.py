"""Fused GPU kernels (Triton) with plain PyTorch reference implementations, dispatched by device."""
