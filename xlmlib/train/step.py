"""The training step's hot path: the batch reaches the device without host synchronisation, and the
loss module can be compiled as one graph.

A loss module naming `host_keys` (losses.py: an encoder model's losses) gets those tensors on the CPU,
where the model and the loss read their values (padding layout, predicted positions); the model's range
checks run once on the CPU batch, and its forward skips them (validate_inputs) while the step runs.

Under --compile cudagraphs the step is instead one static-shape graph replayed as a CUDA graph, which
takes its inputs on the GPU only: every key travels, the compiled encoder keeps the masked grid, and
the masked-only LM head projects a fixed number of rows (graph_rows) counted on the CPU batch.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from . import distributed as D
from .losses import model_inputs

# What --compile cudagraphs passes to torch.compile: inductor recording CUDA graphs. The tests swap in
# {"backend": "aot_eager"}, the same static capture on CPU without code generation.
CUDA_GRAPHS: dict = {"mode": "reduce-overhead"}


def device_batch(loss_module: nn.Module, batch: dict[str, torch.Tensor], dist: D.Dist,
                 on_device: bool = False) -> dict[str, torch.Tensor]:
    """This process's rows on its device, except the loss module's host_keys (unless on_device: CUDA
    graphs), after the model's checks."""
    host_keys = getattr(loss_module, "host_keys", ())
    if host_keys:
        inputs = model_inputs(batch)
        loss_module.model.check_inputs(inputs["input_ids"], inputs.get("langs"), inputs.get("positions"),
                                       inputs.get("token_type_ids"))
    return D.to_device(batch, dist, () if on_device else host_keys)


def graph_rows(counts: list[int]) -> int:
    """The LM head's fixed row count for micro-batches with these numbers of predicted positions: the
    largest rounded up to a multiple of 1/16 to 1/8 of it (at least 8). Batches of one shape then see few
    distinct values, one graph each (far below dynamo's recompile limit), and filler rows add at most 1/8
    to the head's work."""
    top = max(counts, default=0)
    step = max(8, 1 << max(top.bit_length() - 4, 0))
    return -(-top // step) * step


@contextlib.contextmanager
def _attribute(obj, name: str, value):
    """obj.name is value inside the block and its earlier value after it."""
    before = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, before)


def inputs_checked(loss_module: nn.Module):
    """The forward skips the value checks device_batch already made on the host."""
    if not getattr(loss_module, "host_keys", ()):
        return contextlib.nullcontext()
    return _attribute(loss_module.model, "validate_inputs", False)


def head_rows(loss_module: nn.Module, rows: int | None):
    """The masked-only LM head projects `rows` rows inside (graph_rows, CUDA graphs), and selects the
    predicted positions again afterwards: an evaluation batch has another count, which a fixed number of
    rows could cut short."""
    if rows is None or not hasattr(loss_module, "fixed_rows"):
        return contextlib.nullcontext()
    return _attribute(loss_module, "fixed_rows", rows)


def compile_step(module: nn.Module, backend: str) -> nn.Module:
    """The loss module's forward (model + loss) and its backward compiled as one graph with dynamic
    shapes. The masked-only LM loss picks a data-dependent number of rows (nonzero); dynamo captures such
    ops in the graph instead of breaking it when capture_dynamic_output_shape_ops is on (a process-wide
    dynamo setting). Under compile the encoder runs the masked grid (model.py _packing), whose shapes
    depend only on B and T."""
    if backend == "cudagraphs":  # static shapes: no data-dependent op is left in the step (graph_rows)
        return torch.compile(module, dynamic=False, **CUDA_GRAPHS)
    torch._dynamo.config.capture_dynamic_output_shape_ops = True
    return torch.compile(module, backend=backend, dynamic=True)
