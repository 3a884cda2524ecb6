"""The task table: task name -> class, read by xlmlib.load, the checkpoint code and fine-tuning.

Each task class declares its facts as class attributes (heads.py): `task` (the name xlmlib.load takes),
`head_prefixes` (its own head modules), `hf_suffix` (transformers' class name per head style), and
`finetune_task` where `xlmlib finetune` trains it. TASKS lists the classes, once. Saved xlmlib folders
record the class name, which is accepted wherever a task name is.
"""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path

import torch

from .config import ModelConfig, list_presets

logger = logging.getLogger(__name__)


@cache
def _table() -> dict[str, type]:
    """Every task model, by task name. Imported on first use: the modules defining them import this one."""
    from .heads import (
        CausalLM,
        Encoder,
        MaskedLM,
        MultipleChoice,
        SequenceClassifier,
        TokenClassifier,
    )
    from .mt.model import Translator
    from .qa.heads import QuestionAnswering, QuestionAnsweringBeam

    classes = (Encoder, MaskedLM, CausalLM, SequenceClassifier, TokenClassifier, QuestionAnswering, MultipleChoice,
               QuestionAnsweringBeam, Translator)
    return {cls.task: cls for cls in classes}


def task_names() -> list[str]:
    return list(_table())


def task_classes() -> list[type]:
    return list(_table().values())


def task_class(name: str) -> type:
    """The class of a task name ("masked-lm"), a saved class name ("MaskedLM") or a fine-tuning task
    name ("sequence")."""
    table = _table()
    if name in table:
        return table[name]
    for cls in table.values():
        if name in (cls.__name__, cls.finetune_task):
            return cls
    raise ValueError(f"unknown task {name!r}; choose one of: {', '.join(table)}")


def head_prefixes() -> set[str]:
    """Every head module name of every task: weights under these belong to some head."""
    return {prefix for cls in _table().values() for prefix in cls.head_prefixes}


def finetune_tasks() -> dict[str, type]:
    """`xlmlib finetune --task` names -> their classes."""
    return {cls.finetune_task: cls for cls in _table().values() if cls.finetune_task}


INITS = ("pretrained", "random")


def with_random_hint(err: FileNotFoundError, spec: str) -> FileNotFoundError:
    """The "not found" error of a training verb's --model; for a preset name, with how to start from random
    weights of that architecture instead."""
    if spec in list_presets():
        return FileNotFoundError(f"{err} (or, for a new {spec} with random weights, pass --init random)")
    return err


def build_model(spec: str, task: str, *, init: str = "pretrained", seed: int = 0, **head_options):
    """The model of `task` for training, by one rule for every training verb. init "pretrained": the weights of
    `spec` (a folder, checkpoint file, model shipped with xlmlib, the HF cache, or a download; heads the
    checkpoint lacks start new); a name without reachable weights is hub.resolve's "not found" error, never a
    silent random model. init "random": a new model of spec's architecture (a preset name, or the
    architecture of any source) with random weights, seeded, said in one warning line. head_options go to
    the class (num_labels=, labels=)."""
    cls = task_class(task)
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    if init == "pretrained":
        try:
            return cls.from_pretrained(spec, **head_options)
        except FileNotFoundError as err:
            raise with_random_hint(err, spec) from None
    torch.manual_seed(seed)
    if spec in list_presets() and not Path(spec).exists():
        model = cls(ModelConfig.from_preset(spec), **head_options)
    else:
        model = cls.from_pretrained(spec, **head_options)  # its architecture; the weights are replaced below
    model.reset_parameters()
    logger.warning("--init random: a new %s of the %s architecture with random weights (seed %d)",
                   cls.__name__, spec, seed)
    return model
