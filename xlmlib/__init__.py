"""xlmlib: XLM and XLM-RoBERTa in plain PyTorch."""

from .tokenize import Tokenizer, XLMRTokenizer, XLMTokenizer, align_labels, learn_bpe

__version__ = "0.1.0"

__all__ = ["Tokenizer", "XLMRTokenizer", "XLMTokenizer", "__version__", "align_labels", "learn_bpe"]
