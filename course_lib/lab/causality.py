"""Who depends on whom across positions: forward Jacobians, backward gradients, prefix vs cached decoding.

* :func:`stream_function` turns a model into a function of the residual stream entering one block,
  ``x (T, D) -> logits (T, V)`` for one sequence, so its dependence on each position can be measured.
* :func:`position_jacobian_norms` reduces a function's Jacobian to a ``(T_out, T_in)`` matrix of block
  norms ``‖∂y_t / ∂x_s‖``: lower-triangular with exact zeros for a causal model.
* :func:`loss_position_gradients` does the same for the training signal: ``‖∂loss_t / ∂h_s‖``, how
  much the loss at position ``t`` pushes on the computation at position ``s``.
* :func:`position_update_effect` takes one SGD step on the loss of a single position and measures how
  every position's output moved: the weights are shared, so a right-hand loss changes left-hand outputs.
* :func:`prefix_logits` (each position computed from its prefix alone, as in generation) and
  :func:`cached_logits` (one token at a time through a KV cache).
"""
from __future__ import annotations

import copy
from typing import Callable, Optional

import torch
from torch import Tensor

from .probes import _eval_mode

__all__ = ["stream_function", "position_jacobian_norms", "loss_position_gradients", "position_update_effect",
           "prefix_logits", "cached_logits"]


def _one_sequence(input_ids: Tensor) -> None:
    if input_ids.dim() != 2 or input_ids.shape[0] != 1:
        raise ValueError(f"input_ids must have shape (1, T) (one sequence), got {tuple(input_ids.shape)}")


def stream_function(model, input_ids: Tensor, layer: int = 0, labels: Optional[Tensor] = None
                    ) -> Callable[[Tensor], Tensor]:
    """``f(x (T, D))``: run ``model`` on ``input_ids (1, T)`` with the input of block ``layer``
    replaced by ``x``. Returns the logits ``(T, V)``, or with ``labels`` the per-position losses
    ``(T,)`` (0 where the label is -100). Positions, masks and weights are the model's own."""
    _one_sequence(input_ids)
    n = len(model.layers)
    if not 0 <= layer < n:
        raise ValueError(f"layer={layer} must lie in [0, {n - 1}] (the model has n_layers={n})")
    T, D = input_ids.shape[1], model.config.dim

    def f(x: Tensor) -> Tensor:
        if x.shape != (T, D):
            raise ValueError(f"x must have shape (T, dim) = {(T, D)}, got {tuple(x.shape)}")
        handle = model.layers[layer].register_forward_pre_hook(lambda _m, args: (x[None],) + tuple(args[1:]))
        try:
            if labels is None:
                return model(input_ids).logits[0]
            return model(input_ids, labels=labels, loss_reduction="none").loss[0]
        finally:
            handle.remove()

    return f


def stream_input(model, input_ids: Tensor, layer: int = 0) -> Tensor:
    """The residual stream entering block ``layer`` for ``input_ids (1, T)``: ``(T, D)``, detached."""
    _one_sequence(input_ids)
    with _eval_mode(model), torch.no_grad():
        return model(input_ids, capture=True).captured["hidden_states"][layer][0].detach()


def position_jacobian_norms(fn: Callable[[Tensor], Tensor], x: Tensor, probes: Optional[int] = None,
                            seed: int = 0) -> Tensor:
    """``(T_out, T_in)``: entry ``[t, s]`` is ``‖R_tᵀ ∂fn(x)_t / ∂x_s‖`` for ``fn: (T_in, D) -> (T_out, D_out)``.

    ``probes=None``: ``R_t`` is the identity, the exact Frobenius norm of each Jacobian block (one
    backward pass per output entry). ``probes=k``: ``k`` random Gaussian directions per position
    (``T_out * k`` passes); a block that is exactly zero still gives exactly 0, a non-zero block
    gives a non-zero entry with probability 1.
    """
    if x.dim() != 2:
        raise ValueError(f"x must have shape (T, D), got {tuple(x.shape)}")
    if probes is not None and probes < 1:
        raise ValueError(f"probes={probes} must be >= 1 (or None for the full Jacobian)")
    xin = x.detach().clone().requires_grad_(True)
    y = fn(xin)
    if y.dim() == 1:
        y = y[:, None]
    T_out, D_out = y.shape
    g = torch.Generator().manual_seed(seed)
    norms = torch.zeros(T_out, x.shape[0], dtype=torch.float64)
    for t in range(T_out):
        dirs = torch.eye(D_out) if probes is None else torch.randn(D_out, probes, generator=g).T
        for r in dirs:
            (grad,) = torch.autograd.grad(y[t], xin, grad_outputs=r.to(y.dtype), retain_graph=True)
            norms[t] += grad.double().pow(2).sum(-1)
    return norms.sqrt()


def loss_position_gradients(model, input_ids: Tensor, labels: Tensor, layer: int = 0) -> Tensor:
    """``(T, T)``: entry ``[t, s]`` is ``‖∂loss_t / ∂h_s‖``, the gradient that the loss at position ``t``
    sends into the stream entering block ``layer`` at position ``s`` (rows without a label are 0)."""
    with _eval_mode(model):
        h = stream_input(model, input_ids, layer)
        return position_jacobian_norms(stream_function(model, input_ids, layer, labels), h).float()


def position_update_effect(model, input_ids: Tensor, labels: Tensor, position: int, lr: float = 0.1) -> Tensor:
    """Take one plain SGD step (on a copy of ``model``) on the loss at ``position`` only, and return
    ``(T,)``: the largest absolute change of each position's logits on ``input_ids (1, T)``."""
    _one_sequence(input_ids)
    T = input_ids.shape[1]
    if not 0 <= position < T or int(labels[0, position]) == -100:
        raise ValueError(f"position={position} must lie in [0, {T - 1}] and have a label (not -100)")
    twin = copy.deepcopy(model).eval()
    only = torch.full_like(labels, -100)
    only[0, position] = labels[0, position]
    with torch.no_grad():
        before = twin(input_ids).logits[0]
    twin.zero_grad(set_to_none=True)
    twin(input_ids, labels=only).loss.backward()
    with torch.no_grad():
        for p in twin.parameters():
            if p.grad is not None:
                p -= lr * p.grad
        return (twin(input_ids).logits[0] - before).abs().amax(-1)


def prefix_logits(model, input_ids: Tensor) -> Tensor:
    """``(B, T, V)``: the logits at position ``t`` computed from ``input_ids[:, :t + 1]`` alone, the
    way generation sees the sequence (works for non-causal models too; differentiable)."""
    return torch.stack([model(input_ids[:, :t + 1]).logits[:, -1] for t in range(input_ids.shape[1])], dim=1)


def cached_logits(model, input_ids: Tensor) -> Tensor:
    """``(B, T, V)``: the logits of feeding ``input_ids`` one token at a time through a KV cache."""
    cache = model.new_kv_cache(input_ids.shape[0], max_len=input_ids.shape[1])
    return torch.stack([model(input_ids[:, t:t + 1], kv_cache=cache).logits[:, -1]
                        for t in range(input_ids.shape[1])], dim=1)
