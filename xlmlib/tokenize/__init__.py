"""Tokenizers: XLMTokenizer (Moses + BPE) and XLMRTokenizer (SentencePiece + fairseq ids).

`Tokenizer.from_pretrained(src)` picks the right one from what `src` holds.
"""

from __future__ import annotations

from .. import hub
from .base import CONFIG_NAME, Batch, read_json
from .learn import convert_fastbpe, learn_bpe
from .words import align_labels
from .xlm import XLMTokenizer
from .xlmr import SPM_FILE, XLMRTokenizer

_XLMR_CLASSES = {"XLMRTokenizer", "XLMRobertaTokenizer", "XLMRobertaTokenizerFast"}
_XLM_CLASSES = {"XLMTokenizer"}


class Tokenizer:
    """Entry point: `Tokenizer.from_pretrained(src)` returns an XLMTokenizer or an XLMRTokenizer."""

    def __init__(self):
        raise TypeError("use Tokenizer.from_pretrained(src)")

    @staticmethod
    def from_pretrained(src, **kwargs):
        """`src`: a sentencepiece .model file, or a folder holding our saved layout, a transformers
        tokenizer folder (vocab.json + merges.txt, or sentencepiece.bpe.model), or the released XLM
        codes_* + vocab_* files."""
        src = hub.resolve(src)  # a path, or a hub name found in the local HF cache
        if src.is_file():
            if src.suffix == ".model":
                return XLMRTokenizer(src, **kwargs)
            raise ValueError(f"{src}: expected a SentencePiece .model file or a tokenizer folder")
        if not src.is_dir():
            raise FileNotFoundError(f"tokenizer source not found: {src}")
        config = read_json(src / CONFIG_NAME) if (src / CONFIG_NAME).is_file() else {}
        cls_name = config.get("tokenizer_class")
        if cls_name in _XLMR_CLASSES or (cls_name is None and (src / SPM_FILE).is_file()):
            return XLMRTokenizer.from_pretrained(src, **kwargs)
        if cls_name in _XLM_CLASSES or (src / "vocab.json").is_file() or any(src.glob("codes_*")):
            return XLMTokenizer.from_pretrained(src, **kwargs)
        raise FileNotFoundError(
            f"{src}: no tokenizer found (looked for {CONFIG_NAME}, {SPM_FILE}, vocab.json + merges.txt, codes_* + vocab_*)")


__all__ = ["Batch", "Tokenizer", "XLMRTokenizer", "XLMTokenizer", "align_labels", "convert_fastbpe", "learn_bpe"]
