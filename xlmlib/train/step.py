"""The training step's hot path: the batch reaches the device without host synchronisation, and the
loss module can be compiled as one graph.

A loss module naming `host_keys` (losses.py: an encoder model's losses) gets those tensors on the CPU,
where the model and the loss read their values (padding layout, predicted positions); the model's range
checks run once on the CPU batch, and its forward skips them (validate_inputs) while the step runs.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from . import distributed as D
from .losses import model_inputs


def device_batch(loss_module: nn.Module, batch: dict[str, torch.Tensor], dist: D.Dist) -> dict[str, torch.Tensor]:
    """This process's rows on its device, except the loss module's host_keys, after the model's checks."""
    host_keys = getattr(loss_module, "host_keys", ())
    if host_keys:
        inputs = model_inputs(batch)
        loss_module.model.check_inputs(inputs["input_ids"], inputs.get("langs"), inputs.get("positions"),
                                       inputs.get("token_type_ids"))
    return D.to_device(batch, dist, host_keys)


@contextlib.contextmanager
def inputs_checked(loss_module: nn.Module):
    """The forward skips the value checks device_batch already made on the host."""
    model = loss_module.model if getattr(loss_module, "host_keys", ()) else None
    if model is None:
        yield
        return
    before, model.validate_inputs = model.validate_inputs, False
    try:
        yield
    finally:
        model.validate_inputs = before


def compile_step(module: nn.Module, backend: str) -> nn.Module:
    """The loss module's forward (model + loss) and its backward compiled as one graph with dynamic
    shapes. The masked-only LM loss picks a data-dependent number of rows (nonzero); dynamo captures such
    ops in the graph instead of breaking it when capture_dynamic_output_shape_ops is on (a process-wide
    dynamo setting). Under compile the encoder runs the masked grid (model.py _packing), whose shapes
    depend only on B and T."""
    torch._dynamo.config.capture_dynamic_output_shape_ops = True
    return torch.compile(module, backend=backend, dynamic=True)
