"""What every reader returns: the config, the tensors in our names, and where they came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..config import ModelConfig


@dataclass
class Checkpoint:
    config: ModelConfig
    state: dict[str, torch.Tensor]  # our parameter names
    source: str
    format: str  # "xlmlib", "hf (<architecture>)", "fairseq", "xlm-pth"
    head_options: dict = field(default_factory=dict)
    # Our model class the weights were saved from, where the source says (xlmlib / HF architectures).
    task: str | None = None
    # Tokenizer files found beside the weights (file name to copy under -> path), for convert and Tokenizer.
    tokenizer_files: dict[str, Path] = field(default_factory=dict)
    # Vocabulary stored inside the checkpoint itself (original XLM `dico_id2word`), in id order.
    vocab: tuple[str, ...] = ()
    # An xlmlib training checkpoint (checkpoint.pt): step, train_config and what --resume continues.
    training: dict = field(default_factory=dict)
