"""The task registry: one entry per task model, read by xlmlib.load, the checkpoint code and fine-tuning.

Each task class declares its facts as class attributes (heads.py): `task` (the name xlmlib.load takes),
`head_prefixes` (its own head modules), `hf_suffix` (transformers' class name per head style), and
`finetune_task` where `xlmlib finetune` trains it. Defining the class registers it
(TaskModel.__init_subclass__), so adding a head touches its class and nothing here. Saved xlmlib folders
record the class name, which is accepted wherever a task name is.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .config import ModelConfig, list_presets

_REGISTRY: dict[str, type] = {}


def register(cls: type) -> None:
    """Record a class that declares its own `task` name (subclasses that do not are not tasks)."""
    name = cls.__dict__.get("task")
    if name is None:
        return
    known = _REGISTRY.get(name)
    if known is not None and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ValueError(f"task {name!r} is already taken by {known.__qualname__}")
    _REGISTRY[name] = cls


def task_names() -> list[str]:
    return list(_REGISTRY)


def task_classes() -> list[type]:
    return list(_REGISTRY.values())


def task_class(name: str) -> type:
    """The class of a task name ("masked-lm"), a saved class name ("MaskedLM") or a fine-tuning task
    name ("sequence")."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    for cls in _REGISTRY.values():
        if name in (cls.__name__, cls.finetune_task):
            return cls
    raise ValueError(f"unknown task {name!r}; choose one of: {', '.join(_REGISTRY)}")


def head_prefixes() -> set[str]:
    """Every head module name of every task: weights under these belong to some head."""
    return {prefix for cls in _REGISTRY.values() for prefix in cls.head_prefixes}


def finetune_tasks() -> dict[str, type]:
    """`xlmlib finetune --task` names -> their classes."""
    return {cls.finetune_task: cls for cls in _REGISTRY.values() if cls.finetune_task}


def build_model(spec: str, task: str, *, seed: int = 0, **head_options):
    """The model of `task` for training: a preset name gives a randomly initialised model of that
    architecture (seeded); anything else is loaded with from_pretrained (a folder, checkpoint file or
    hub name), head_options going to the class (num_labels=...)."""
    cls = task_class(task)
    if spec in list_presets() and not Path(spec).exists():
        torch.manual_seed(seed)
        model = cls(ModelConfig.from_preset(spec), **head_options)
        model.reset_parameters()
        return model
    return cls.from_pretrained(spec, **head_options)
