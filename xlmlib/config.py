"""Architecture configuration: one frozen dataclass for XLM, XLM-R and XLM-R XL/XXL.

Family differences are values here (norm placement, position offset, eps, languages, head style),
never checks of a model's name. Presets live in configs/models/*.toml (shipped as xlmlib/presets).
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from importlib import resources
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from .family import HEAD_STYLES

ACTIVATIONS = ("gelu", "relu")


@dataclass(frozen=True)
class ModelConfig:
    """Everything that decides the shape and the forward pass of a model.

    head_style names the family, with pre_norm for XLM-R XL/XXL: "xlm" (modeling_xlm) or "roberta"
    (modeling_xlm_roberta); family.py holds what the family decides (head shapes, framing, HF names).
    """

    vocab_size: int
    dim: int
    n_layers: int
    n_heads: int
    ffn_dim: int
    max_positions: int = 512
    # XLM-R numbers real tokens from pad_index + 1 (modeling_xlm_roberta create_position_ids_from_input_ids).
    position_offset: int = 0
    sinusoidal: bool = False
    type_vocab_size: int = 0
    n_langs: int = 1
    use_lang_emb: bool = True
    langs: tuple[str, ...] = ()
    activation: str = "gelu"
    norm_eps: float = 1e-12
    pre_norm: bool = False
    embed_norm: bool = True
    # XLM multiplies padded rows by 0 after the embeddings and after every layer (modeling_xlm `tensor *= mask`).
    zero_pad_rows: bool = True
    causal: bool = False
    dropout: float = 0.1
    attention_dropout: float = 0.1
    pad_index: int = 2
    bos_index: int = 0
    eos_index: int = 1
    unk_index: int = 3
    mask_index: int = 5
    head_style: str = "xlm"
    num_labels: int = 2
    # Label names in id order (a classifier's classes, a tagger's tags); () where they were never named.
    labels: tuple[str, ...] = ()
    classifier_dropout: float | None = None
    start_n_top: int = 5
    end_n_top: int = 5
    init_std: float = 0.02

    def __post_init__(self):
        object.__setattr__(self, "langs", tuple(self.langs))
        object.__setattr__(self, "labels", tuple(str(name) for name in self.labels))
        problems = []
        for name in ("vocab_size", "dim", "n_layers", "n_heads", "ffn_dim", "max_positions", "n_langs"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.dim % max(self.n_heads, 1):
            problems.append(f"dim {self.dim} is not divisible by n_heads {self.n_heads}")
        if self.activation not in ACTIVATIONS:
            problems.append(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if self.head_style not in HEAD_STYLES:
            problems.append(f"head_style must be one of {HEAD_STYLES}, got {self.head_style!r}")
        if self.langs and len(self.langs) != self.n_langs:
            problems.append(f"langs lists {len(self.langs)} codes but n_langs is {self.n_langs}")
        if self.labels and len(self.labels) != self.num_labels:
            problems.append(f"labels names {len(self.labels)} classes but num_labels is {self.num_labels}")
        if len(set(self.labels)) != len(self.labels):
            problems.append(f"labels has duplicates: {list(self.labels)}")
        if self.max_positions <= self.position_offset:
            problems.append(f"max_positions {self.max_positions} leaves no room after offset {self.position_offset}")
        if problems:
            raise ValueError("invalid ModelConfig: " + "; ".join(problems))

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def has_lang_emb(self) -> bool:
        return self.n_langs > 1 and self.use_lang_emb

    @property
    def max_tokens(self) -> int:
        """Longest input the position table allows (XLM-R: 514 rows - offset 2 = 512 real tokens)."""
        return self.max_positions - self.position_offset

    @property
    def lang2id(self) -> dict[str, int]:
        return {code: i for i, code in enumerate(self.langs)}

    @property
    def id2label(self) -> dict[int, str]:
        """Class id -> name; unnamed classes read LABEL_i, as transformers names them."""
        return {i: self.labels[i] if self.labels else f"LABEL_{i}" for i in range(self.num_labels)}

    @property
    def label2id(self) -> dict[str, int]:
        return {name: i for i, name in self.id2label.items()}

    def with_labels(self, num_labels: int | None = None, labels=None) -> ModelConfig:
        """This config with a classifier's classes: names (labels=) fix their number; a number alone keeps the
        names when it matches them and drops them otherwise."""
        if labels is not None:
            labels = tuple(labels)
            if num_labels is not None and num_labels != len(labels):
                raise ValueError(f"num_labels={num_labels} but {len(labels)} labels given: {list(labels)}")
            return self.replace(num_labels=len(labels), labels=labels)
        if num_labels is not None and num_labels != self.num_labels:
            return self.replace(num_labels=num_labels, labels=())
        return self

    def replace(self, **changes) -> ModelConfig:
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise TypeError(f"unknown ModelConfig option(s): {', '.join(unknown)}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["langs"] = list(self.langs)
        if self.labels:  # written only where the classes are named, so older configs stay as they were
            out["labels"] = list(self.labels)
        else:
            del out["labels"]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown ModelConfig key(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        return cls(**data)

    @classmethod
    def from_preset(cls, name: str) -> ModelConfig:
        path = _presets_dir() / f"{name}.toml"
        if not path.is_file():
            raise ValueError(f"unknown preset {name!r}; available: {', '.join(list_presets())}")
        with path.open("rb") as fh:
            return cls.from_dict(tomllib.load(fh))


def _presets_dir():
    return resources.files("xlmlib") / "presets"


def list_presets() -> list[str]:
    """Names of the shipped architecture presets (one per public checkpoint)."""
    return sorted(p.name[: -len(".toml")] for p in _presets_dir().iterdir() if p.name.endswith(".toml"))
