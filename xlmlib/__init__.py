"""xlmlib: XLM and XLM-RoBERTa in plain PyTorch."""

from .checkpoint import CheckpointError
from .checkpoint.convert import convert
from .config import ModelConfig, list_presets
from .heads import (
    CausalLM,
    Encoder,
    MaskedLM,
    MultipleChoice,
    QuestionAnswering,
    SequenceClassifier,
    TokenClassifier,
)
from .heads_qa import QuestionAnsweringBeam
from .model import KVCache, Output

__version__ = "0.1.0"

__all__ = [
    "CausalLM", "CheckpointError", "convert", "Encoder", "KVCache", "MaskedLM", "ModelConfig", "MultipleChoice", "Output",
    "QuestionAnswering", "QuestionAnsweringBeam", "SequenceClassifier", "TokenClassifier", "__version__",
    "list_presets",
]
