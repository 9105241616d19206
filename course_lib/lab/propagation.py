"""Signal propagation through depth: what happens to activations and gradients from block to block.

Three instruments for residual connections and norm placement:

* :func:`signal_trace` runs one batch forward and backward and reports, per block, the RMS of the
  residual stream entering it, the gradient norm with respect to that stream, and the gradient norm of
  the block's parameters (the quantity Xiong et al. 2020 plot against depth).
* :func:`block_function` and :func:`block_jacobian` turn one decoder block into a plain function of a
  ``(T, D)`` input and return its full Jacobian ``(T*D, T*D)``. For a pre-norm block
  ``y = x + F(x)`` it is ``I + J_F``, whose singular values say how much the block can shrink or
  stretch a gradient that passes through it.
* :func:`jacobian_spectrum` gives those singular values (and those of ``J_F``).

All functions leave the model's training mode and existing ``.grad`` values as they found them.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Iterator, List

import torch

from ..train import layer_grad_norms

Tensor = torch.Tensor


@contextlib.contextmanager
def _eval_keep_grads(model) -> Iterator[None]:
    """Eval mode (no dropout) and saved ``.grad`` values, both restored on exit."""
    was = model.training
    saved = {n: (None if p.grad is None else p.grad.clone()) for n, p in model.named_parameters()}
    model.eval()
    try:
        yield
    finally:
        model.train(was)
        for n, p in model.named_parameters():
            p.grad = saved[n]


@contextlib.contextmanager
def _stream_taps(model, store: List[Tensor]) -> Iterator[None]:
    """Append the input of every block and the output of the last one to ``store`` during a forward."""
    def pre(_module, args):
        store.append(args[0])

    def post(_module, _args, output):
        store.append(output[0] if isinstance(output, tuple) else output)

    handles = [layer.register_forward_pre_hook(pre) for layer in model.layers]
    handles.append(model.layers[-1].register_forward_hook(post))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@dataclass
class SignalTrace:
    """Per-depth measurements of one batch (``L`` = number of blocks).

    stream_rms: ``L + 1`` values, RMS of the residual stream entering block 0..L-1 and leaving the last.
    stream_grad: ``L + 1`` values, ``‖∂loss/∂x_l‖`` (Frobenius norm over the batch) at the same points.
    param_grad: ``L`` values, ``‖∂loss/∂θ_l‖`` over all parameters of block ``l``.
    loss: the batch loss.
    """

    stream_rms: List[float]
    stream_grad: List[float]
    param_grad: List[float]
    loss: float

    @property
    def block_gain(self) -> List[float]:
        """``‖∂L/∂x_l‖ / ‖∂L/∂x_{l+1}‖`` per block: how much block ``l`` scales the gradient passing
        back through it (below 1: the block shrinks it)."""
        g = self.stream_grad
        return [g[i] / g[i + 1] if g[i + 1] > 0 else float("inf") for i in range(len(g) - 1)]


def signal_trace(model, input_ids: Tensor, labels: Tensor) -> SignalTrace:
    """Forward and backward one batch ``input_ids (B, T)`` / ``labels (B, T)`` (aligned targets, -100
    ignored) in eval mode and return the per-block :class:`SignalTrace`."""
    if input_ids.dim() != 2 or labels.shape != input_ids.shape:
        raise ValueError(f"input_ids and labels must both have shape (B, T); got {tuple(input_ids.shape)} "
                         f"and {tuple(labels.shape)}")
    dev = next(model.parameters()).device
    store: List[Tensor] = []
    with _eval_keep_grads(model):
        model.zero_grad(set_to_none=True)
        with _stream_taps(model, store):
            loss = model(input_ids.to(dev), labels=labels.to(dev)).loss
        for x in store:
            x.retain_grad()
        loss.backward()
        rms = [float(x.detach().float().pow(2).mean().sqrt()) for x in store]
        sgrad = [float(x.grad.float().norm()) if x.grad is not None else 0.0 for x in store]
        per_module = layer_grad_norms(model)
        pgrad = [per_module.get(f"layers.{i}", 0.0) for i in range(len(model.layers))]
    return SignalTrace(stream_rms=rms, stream_grad=sgrad, param_grad=pgrad, loss=float(loss.detach()))


class _Stop(Exception):
    """Raised by a forward hook to end a forward pass once the block of interest has run."""

    def __init__(self, output: Tensor):
        super().__init__("block output captured")
        self.output = output


def block_function(model, layer: int, seq_len: int) -> Callable[[Tensor], Tensor]:
    """Block ``layer`` of ``model`` as a function ``x (T, D) -> y (T, D)`` for one sequence of length
    ``seq_len`` at positions ``0..T-1``, with the model's own positions, mask and biases.

    It runs the model's forward on a dummy sequence, replaces the block's input by ``x`` with a
    forward pre-hook and stops right after the block (so later blocks never run). Going through the
    model's forward keeps the function correct whatever the block's call signature is."""
    c = model.config
    if not 0 <= layer < c.n_layers:
        raise ValueError(f"layer={layer} must lie in [0, {c.n_layers - 1}]")
    if not 1 <= seq_len <= c.context_length:
        raise ValueError(f"seq_len={seq_len} must lie in [1, {c.context_length}]")
    block = model.layers[layer]
    dev = next(model.parameters()).device
    dummy = torch.zeros(1, seq_len, dtype=torch.long, device=dev)

    def f(x: Tensor) -> Tensor:
        if x.shape != (seq_len, c.dim):
            raise ValueError(f"x must have shape (seq_len, dim) = {(seq_len, c.dim)}, got {tuple(x.shape)}")

        def swap_input(_module, args):
            return (x[None],) + tuple(args[1:])

        def stop(_module, _args, output):
            raise _Stop(output[0] if isinstance(output, tuple) else output)

        handles = [block.register_forward_pre_hook(swap_input), block.register_forward_hook(stop)]
        try:
            model(dummy)
        except _Stop as done:
            return done.output[0]
        finally:
            for h in handles:
                h.remove()
        raise RuntimeError(f"block {layer} did not run during the forward pass")

    return f


def block_jacobian(model, layer: int, x: Tensor) -> Tensor:
    """The Jacobian of block ``layer`` at input ``x (T, D)``, as a ``(T*D, T*D)`` matrix whose row
    ``t*D + i`` is ``∂y[t, i]/∂x`` (the flattened input). One backward pass per output entry, so keep
    ``T*D`` small (a few hundred)."""
    if x.dim() != 2:
        raise ValueError(f"x must have shape (T, D), got {tuple(x.shape)}")
    f = block_function(model, layer, x.shape[0])
    with _eval_keep_grads(model):
        xin = x.detach().clone().requires_grad_(True)
        y = f(xin).reshape(-1)
        rows = []
        for i in range(y.numel()):
            (g,) = torch.autograd.grad(y[i], xin, retain_graph=i < y.numel() - 1)
            rows.append(g.reshape(-1))
    return torch.stack(rows)


@dataclass
class Spectrum:
    """Singular values (descending, float64) of a block Jacobian ``J = I + J_F`` and of ``J_F = J - I``."""

    block: Tensor
    branch: Tensor

    @property
    def smallest(self) -> float:
        return float(self.block[-1])

    @property
    def largest(self) -> float:
        return float(self.block[0])


def jacobian_spectrum(jacobian: Tensor) -> Spectrum:
    """Singular values of a square Jacobian and of the same matrix minus the identity."""
    if jacobian.dim() != 2 or jacobian.shape[0] != jacobian.shape[1]:
        raise ValueError(f"jacobian must be a square matrix, got shape {tuple(jacobian.shape)}")
    j = jacobian.detach().double()
    eye = torch.eye(j.shape[0], dtype=j.dtype, device=j.device)
    return Spectrum(block=torch.linalg.svdvals(j), branch=torch.linalg.svdvals(j - eye))
