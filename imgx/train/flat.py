"""Parameters packed into one buffer, so the optimizer and gradient clipping run one op per step, not one per tensor.

On CPU, ``torch.optim.AdamW(foreach=True)`` still loops over the tensors in C++ (about ten ops each per step); the
micro denoiser has 257 of them, and its optimizer took 12 ms of a 136 ms step on 2 cores. Packed, the same
elementwise arithmetic runs over one tensor: the weights after training are bitwise the same (checked by
``tests/train/test_flat.py``) and the step is ~5% faster (``bench/RESULTS.md``, session 19). The same idea as
apex's and DeepSpeed's flat buffers, for a loop that owns its modules.

Use it for a loop in which every packed parameter takes part in every loss it steps on: a parameter without a
gradient is skipped by ``torch.optim`` (``grad is None``), a packed one gets a zero gradient and still moves
with Adam's momentum.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


class FlatParameters:
    """Re-seat ``params`` as views of one contiguous buffer ``param``, their ``.grad`` as views of ``grad``.

    Optimize ``[flat.param]`` (its ``.grad`` is ``flat.grad``); call :meth:`zero_grad` before each backward (the
    backward accumulates into the views), :meth:`clip_grad_norm_` where ``nn.utils.clip_grad_norm_`` was, and
    :meth:`release` when done: views of one buffer cannot be saved with safetensors.
    """

    def __init__(self, params: Iterable[nn.Parameter]):
        self.params = list(params)
        if not self.params:
            raise ValueError("no parameters to pack")
        first = self.params[0]
        if any(p.dtype != first.dtype or p.device != first.device for p in self.params):
            raise ValueError("packed parameters must share one dtype and one device")
        if len({id(p) for p in self.params}) != len(self.params):
            raise ValueError("a parameter appears twice")
        total = sum(p.numel() for p in self.params)
        self.param = torch.empty(total, dtype=first.dtype, device=first.device)
        self.grad = torch.zeros_like(self.param)
        offset = 0
        for p in self.params:
            n = p.numel()
            self.param[offset:offset + n].copy_(p.detach().reshape(-1))
            p.data = self.param[offset:offset + n].view_as(p)
            p.grad = self.grad[offset:offset + n].view_as(p)
            offset += n
        self.param.grad = self.grad

    def zero_grad(self) -> None:
        """Zero every gradient in place (``set_to_none`` would unhook the views)."""
        self.grad.zero_()

    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor:
        """``nn.utils.clip_grad_norm_(params, max_norm, foreach=True)``, bitwise: the same per-tensor norms and
        total, then one multiply over the buffer. Returns the total norm before clipping."""
        total = nn.utils.get_total_norm([p.grad for p in self.params], 2.0, foreach=True)
        self.grad.mul_(torch.clamp(max_norm / (total + 1e-6), max=1.0))
        return total

    def release(self) -> None:
        """Give each parameter its own storage again (the trained values) and drop the packed gradients."""
        for p in self.params:
            p.data = p.data.clone()
            p.grad = None
        self.param.grad = None
