"""bf16 working copies of the weights, refreshed once per optimizer update from fp32 master weights.

Why: with precision "bf16" the parameters stay fp32 and torch.autocast casts every weight a matmul reads
to bf16 in every forward (and the casts' backward), which a GPU profile measured at 24% of an XLM-R large
training step. With precision "bf16-weights" the model's own parameters hold bf16 *working copies*; the
optimizer updates fp32 *masters* kept here (so its state is fp32 too), and the masters are copied into
the working copies once per update, after gradient accumulation. Training still runs under autocast, so
activations, and layer_norm / softmax / cross-entropy in fp32, behave as with "bf16"; autocast leaves a
tensor that is already bf16 alone, so no per-forward weight cast remains.

Which parameters: every trainable one outside LayerNorm modules (quantize.bf16_params, the rule of the
inference bf16 mode): Linear weights and biases, the embedding tables (the token table is also the tied LM
projection) and the LM head's bias. LayerNorm parameters feed layer_norm, which autocast runs in fp32, so
they stay fp32 and are their own masters.

What differs from "bf16", all within bf16 noise: the working copies' gradients are bf16 (summed over
micro-batches in bf16, and all-reduced in bf16 under DDP) before they become the masters' fp32 gradients,
and the embedding sums are added in bf16. Under DDP the trainer broadcasts rank 0's masters at the start,
as DDP does for the (working) parameters.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from ..precision import bf16_params


class BF16Weights:
    """Turns `model`'s parameters (those of quantize.bf16_params that are trained) into bf16 working
    copies in place, and keeps their fp32 masters.

    parameters(): what the optimizer updates, one per trainable parameter in model.parameters() order (so
    an optimizer state_dict has the same layout as in fp32 training): the fp32 master of a converted
    parameter, the parameter itself otherwise. Each update: backward, grads_to_masters(), clip and step on
    parameters(), masters_to_working(). masters_in_model() lends the masters to the model (evaluation,
    saving: an fp32 model, the same state_dict as in fp32 training); release() gives them back for good.
    """

    def __init__(self, model: nn.Module):
        trained = [p for p in model.parameters() if p.requires_grad]  # a tied table appears once
        not_fp32 = [(n, p.dtype) for n, p in model.named_parameters()
                    if p.requires_grad and p.dtype != torch.float32]
        if not_fp32:
            name, dtype = not_fp32[0]
            raise ValueError(f"precision 'bf16-weights' keeps fp32 master weights and needs an fp32 model, but "
                             f"{len(not_fp32)} parameter(s) are not fp32 ({name} is {dtype}); call model.float() "
                             "or load it with from_pretrained's default dtype (float32)")
        convert = {id(p) for p in bf16_params(model)}
        self.working = [p for p in trained if id(p) in convert]
        # A master takes over the parameter's fp32 storage (no copy); the parameter gets a new bf16 tensor.
        self.masters = [nn.Parameter(p.data) for p in self.working]
        self._bf16 = [torch.empty_like(p, dtype=torch.bfloat16) for p in self.working]
        for param, bf16 in zip(self.working, self._bf16):
            param.data = bf16
        self.masters_to_working()
        master_of = {id(p): m for p, m in zip(self.working, self.masters)}
        self._params = [master_of.get(id(p), p) for p in trained]

    def parameters(self) -> list[nn.Parameter]:
        return list(self._params)

    def grads_to_masters(self) -> None:
        """The working copies' bf16 gradients become the masters' fp32 gradients (the bf16 ones are dropped);
        a parameter without a gradient (unused this step) leaves its master without one, as in fp32 training."""
        for param, master in zip(self.working, self.masters):
            master.grad = None if param.grad is None else param.grad.float()
            param.grad = None

    @torch.no_grad()
    def masters_to_working(self) -> None:
        """Round every master to bf16 into its working copy. The one place working copies are made, so a
        resumed run (fresh copies of the saved masters) holds exactly the weights of an unbroken one."""
        torch._foreach_copy_(self._bf16, self.masters)

    @contextlib.contextmanager
    def masters_in_model(self):
        """Within the block the model's parameters are the fp32 masters (storage shared, nothing copied):
        evaluation sees the weights the optimizer holds, and a state_dict or save_pretrained is fp32."""
        self._point_to(self.masters)
        try:
            yield
        finally:
            self._point_to(self._bf16)

    def release(self) -> None:
        """Training is over: the model keeps the fp32 masters as its parameters (no copy) and the bf16
        copies are dropped, so the model is what fp32 training leaves behind."""
        self._point_to(self.masters)
        self._bf16 = []

    def _point_to(self, tensors) -> None:
        for param, tensor in zip(self.working, tensors):
            param.data = tensor.data

