"""xlmlib: XLM and XLM-RoBERTa in plain PyTorch."""

from . import qa
from .api import InputTooLong, embed, fill_mask, finetune, generate, load
from .attention import KVCache
from .checkpoint import CheckpointError
from .checkpoint.convert import convert
from .config import ModelConfig, list_presets
from .evaluation import classify, entity_metrics, evaluate, mine, tag
from .heads import (
    CausalLM,
    Encoder,
    MaskedLM,
    MultipleChoice,
    SequenceClassifier,
    TokenClassifier,
)
from .model import Output
from .mt.model import Translator
from .mt.translate import translate
from .qa import QuestionAnswering, QuestionAnsweringBeam, answer, qa_metrics
from .tokenize import Tokenizer, XLMRTokenizer, XLMTokenizer, align_labels, learn_bpe
from .trim import trim_vocab
from .vocab.extend import extend_vocab

__version__ = "0.1.0"

__all__ = [
    "CausalLM", "CheckpointError", "Encoder", "InputTooLong", "KVCache", "MaskedLM", "ModelConfig",
    "MultipleChoice", "Output", "QuestionAnswering", "QuestionAnsweringBeam", "SequenceClassifier",
    "TokenClassifier", "Tokenizer", "Translator", "XLMRTokenizer", "XLMTokenizer", "__version__", "align_labels",
    "answer", "classify", "convert", "embed", "entity_metrics", "evaluate", "extend_vocab", "fill_mask", "finetune",
    "generate", "learn_bpe", "list_presets", "load", "mine", "qa", "qa_metrics", "tag", "translate", "trim_vocab",
]
