"""The facts of each model family, in one place: XLM, XLM-R, and XLM-R XL/XXL.

The encoder itself differs between families only by ModelConfig values (norm placement, position offset,
eps, languages). What else differs is here: how sequences are framed with special ids, which head shapes
the published checkpoints use, transformers' class names and config model_type, and the preset that a
checkpoint reader starts from. A config names its family by `head_style` ("xlm" or "roberta") and
`pre_norm` (XL/XXL); code asks `family_of(config)` and never compares names itself.

Sources: shared/reference/formats.md sections 1-5 (modeling_xlm, modeling_xlm_roberta(_xl), XLM's
xlm/utils.py concat_batches and its XNLI framing, fairseq's dictionary).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

HEAD_STYLES = ("xlm", "roberta")


@dataclass(frozen=True)
class Framing:
    """Special ids around one text, `open A close`, or a pair, `open A close [close]*gap B close`."""

    open: int
    close: int
    gap: int = 0  # extra `close` ids between the two texts of a pair (XLM-R's `</s></s>`)

    def n_special(self, pair: bool = False) -> int:
        return 3 + self.gap if pair else 2

    def frame(self, a: Sequence, b: Sequence | None = None, special: Callable[[int], Any] | None = None) -> list:
        """a (and b) with the special ids placed; `special` maps each special id to the item that stands for
        it, so the same layout frames ids, character spans or segment numbers."""
        mark = special or (lambda i: i)
        out = [mark(self.open), *a, mark(self.close)]
        if b is not None:
            out += [mark(self.close) for _ in range(self.gap)] + [*b, mark(self.close)]
        return out

    def second_start(self, len_a: int) -> int:
        """Index where a pair's second side begins: the separator just before its text (with gap 0 the
        one `close` both sides share)."""
        return len_a + 1 + self.gap

    def strip(self, ids: list[int]) -> list[int]:
        """The text of one framed single text."""
        return ids[1:-1]


@dataclass(frozen=True)
class Family:
    name: str
    head_style: str  # ModelConfig.head_style of the family's checkpoints
    pre_norm: bool  # ModelConfig.pre_norm of its checkpoints
    preset: str  # the architecture a checkpoint reader starts from; the file replaces what it decides
    hf_model_type: str  # transformers config.json model_type
    hf_prefix: str  # transformers class names: prefix + the task class's hf_suffix[head_style]
    hf_tokenizer: str  # transformers' tokenizer class (tokenizer_config.json), for AutoTokenizer
    # XLM's own code frames every sentence `</s> A </s>` (xlm/data/dataset.py, concat_batches);
    # transformers' XLMTokenizer and every XLM-R tool open with <s>.
    opens_with_eos: bool
    pair_gap: int  # XLM pairs `A </s> B` (XNLI; transformers' XLMTokenizer), XLM-R `A </s></s> B`
    n_specials: int  # ids below this are special tokens: XLM <s> </s> <pad> <unk> <special0..9>; fairseq's 4

    @property
    def lm_head_transform(self) -> bool:
        """XLM-R's lm_head: dense -> gelu -> LayerNorm before the tied projection; XLM's pred_layer projects."""
        return self.head_style == "roberta"

    @property
    def classifier_hidden(self) -> bool:
        """XLM-R's classifier: dense -> tanh before out_proj; XLM's sequence_summary projects the first token."""
        return self.head_style == "roberta"

    @property
    def choice_pooler(self) -> bool:
        """XLM-R's multiple choice scores the tanh-pooled first token with Linear(D, 1); XLM uses its
        sequence summary Linear(D, num_labels) then logits_proj Linear(num_labels, 1)."""
        return self.head_style == "roberta"

    def framing(self, cfg) -> Framing:
        """How the model's training and fine-tuning data are framed (XLM: `</s> A </s> B </s>`, XNLI)."""
        return Framing(cfg.eos_index if self.opens_with_eos else cfg.bos_index, cfg.eos_index, self.pair_gap)

    def tlm_framing(self, cfg) -> Framing:
        """TLM's parallel pair: XLM concatenates two framed sentences (`</s> s1 </s> </s> s2 </s>`,
        concat_batches), XLM-R frames them as a pair (`<s> s1 </s></s> s2 </s>`): one separator between."""
        return replace(self.framing(cfg), gap=1)

    def tokenizer_framing(self, bos: int, eos: int) -> Framing:
        """What transformers' tokenizer of the family gives: `<s> A </s>`, pairs with the family's gap."""
        return Framing(bos, eos, self.pair_gap)

    def hf_architecture(self, task_cls) -> str | None:
        """transformers' class name for one of our task classes, None where transformers has none."""
        suffix = dict(task_cls.hf_suffix).get(self.head_style)
        return None if suffix is None else self.hf_prefix + suffix


XLM = Family(name="XLM", head_style="xlm", pre_norm=False, preset="xlm-mlm-en-2048", hf_model_type="xlm",
             hf_prefix="XLM", hf_tokenizer="XLMTokenizer", opens_with_eos=True, pair_gap=0, n_specials=14)
XLM_R = Family(name="XLM-R", head_style="roberta", pre_norm=False, preset="xlm-roberta-base",
               hf_model_type="xlm-roberta", hf_prefix="XLMRoberta", hf_tokenizer="XLMRobertaTokenizer",
               opens_with_eos=False, pair_gap=1, n_specials=4)
XLM_R_XL = replace(XLM_R, name="XLM-R XL", pre_norm=True, preset="xlm-roberta-xl", hf_model_type="xlm-roberta-xl",
                   hf_prefix="XLMRobertaXL")
FAMILIES = (XLM, XLM_R, XLM_R_XL)


def family_of(cfg) -> Family:
    """The family of a ModelConfig (XLM ignores pre_norm: it has no pre-LN checkpoints)."""
    if cfg.head_style == "xlm":
        return XLM
    return XLM_R_XL if cfg.pre_norm else XLM_R
