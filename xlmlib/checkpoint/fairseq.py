"""fairseq XLM-R `model.pt` (base/large post-LN, XL/XXL pre-LN), with dict.txt and sentencepiece.bpe.model.

Key names and top-level fields: shared/reference/formats.md section 4 (fairseq models/roberta/model.py,
modules/transformer_sentence_encoder.py, models/transformer/transformer_encoder.py, checkpoint_utils.py).
Old files (fairseq 0.9: xlmr.base/large) put the encoder under `decoder.` and call the embedding norm
`emb_layer_norm`; newer ones use `encoder.` and `layernorm_embedding` (fairseq's own
upgrade_state_dict_named renames them). Very old files fuse q/k/v into `self_attn.in_proj_*`.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import torch

from ..config import ModelConfig
from ..family import XLM_R, XLM_R_XL
from .hf_config import check_activation
from .mapping import CheckpointError, Table, to_internal
from .record import Checkpoint
from .stand_ins import plain

logger = logging.getLogger(__name__)

SPM_FILE, DICT_FILE = "sentencepiece.bpe.model", "dict.txt"
# fairseq Dictionary: <s>, <pad>, </s>, <unk> come before dict.txt's lines, <mask> after them.
N_SPECIAL, PAD, BOS, EOS, UNK = 4, 1, 0, 2, 3
# XL/XXL embedding tables are padded with `madeupwordNNNN` rows (dictionary pad_to_multiple_;
# 250002 -> 250880 = 1960 * 128): allow padding up to this multiple [unconfirmed against real files].
MAX_PAD_MULTIPLE = 128


def fairseq_table(top: str, emb_norm: str | None, heads: tuple[str, ...]) -> Table:
    """The table for one file: `top` is "encoder." or (old files) "decoder."."""
    s = top + "sentence_encoder."
    layer = s + "layers.{i}."
    base = [
        ("embed.tokens", s + "embed_tokens"),
        ("embed.positions", s + "embed_positions"),
        ("final_norm", s + "layer_norm"),  # XL/XXL only: the norm after the last pre-LN layer
        ("layers.{i}.attn.q_proj", layer + "self_attn.q_proj"),
        ("layers.{i}.attn.k_proj", layer + "self_attn.k_proj"),
        ("layers.{i}.attn.v_proj", layer + "self_attn.v_proj"),
        ("layers.{i}.attn.out_proj", layer + "self_attn.out_proj"),
        ("layers.{i}.attn_norm", layer + "self_attn_layer_norm"),
        ("layers.{i}.ffn.fc1", layer + "fc1"),
        ("layers.{i}.ffn.fc2", layer + "fc2"),
        ("layers.{i}.ffn_norm", layer + "final_layer_norm"),
    ]
    if emb_norm:
        base.append(("embed.norm", s + emb_norm))
    head = [("lm_head.dense", top + "lm_head.dense"), ("lm_head.norm", top + "lm_head.layer_norm"),
            ("lm_head.bias", top + "lm_head.bias")]
    for name in heads:
        head += [("classifier.dense", f"classification_heads.{name}.dense"),
                 ("classifier.out_proj", f"classification_heads.{name}.out_proj")]
    return Table(
        name="fairseq XLM-R", base=tuple(base), heads={"fairseq": tuple(head)},
        # Version counters and the sinusoidal-position placeholder buffer are not weights.
        ignore=(r"(^|\.)version$", r"_float_tensor$"),
        tied=((top + "lm_head.weight", s + "embed_tokens.weight"),),
    )


def _layout(state: dict, source: str) -> tuple[str, str | None]:
    for top in ("encoder.", "decoder."):
        if f"{top}sentence_encoder.embed_tokens.weight" in state:
            s = top + "sentence_encoder."
            norm = next((n for n in ("layernorm_embedding", "emb_layer_norm") if f"{s}{n}.weight" in state), None)
            return top, norm
    raise CheckpointError(f"{source}: no sentence_encoder.embed_tokens.weight under encoder. or decoder.; "
                          "this is not a fairseq RoBERTa/XLM-R model")


def _split_in_proj(state: dict) -> dict:
    """Very old files store q, k, v stacked by rows in one in_proj (fairseq MultiheadAttention, pre-2019)."""
    out = {}
    for key, tensor in state.items():
        match = re.fullmatch(r"(.*\.self_attn\.)in_proj_(weight|bias)", key)
        if match is None:
            out[key] = tensor
            continue
        for name, part in zip(("q_proj", "k_proj", "v_proj"), tensor.chunk(3, dim=0)):
            out[f"{match.group(1)}{name}.{match.group(2)}"] = part
    return out


def _arch(payload: dict, source: str) -> dict:
    """Model hyper-parameters from `args` (argparse.Namespace, fairseq <= 0.9) or `cfg.model` (newer)."""
    if payload.get("args") is not None:
        return plain(payload["args"])
    cfg = plain(payload.get("cfg"))
    if isinstance(cfg, dict) and isinstance(cfg.get("model"), dict):
        return cfg["model"]
    raise CheckpointError(f"{source}: neither `args` nor `cfg.model` holds the model's hyper-parameters")


def _dict_rows(path: Path, rows: int) -> int:
    """Check dict.txt against the embedding rows; return the id of <mask>."""
    with path.open(encoding="utf-8") as fh:
        n_lines = sum(1 for line in fh if line.strip())
    expected = N_SPECIAL + n_lines + 1
    if rows == expected:
        return expected - 1
    if expected < rows < expected + MAX_PAD_MULTIPLE and rows % 8 == 0:
        logger.info("%s: %d embedding rows = %d entries padded with %d madeupword rows", path, rows, expected,
                    rows - expected)
        return expected - 1
    raise CheckpointError(
        f"{path}: the dictionary gives {expected} ids (4 specials + {n_lines} lines + <mask>) but the checkpoint's "
        f"embedding has {rows} rows; this dict.txt does not belong to this model.pt")


def _companions(path: Path) -> dict[str, Path]:
    found = {}
    for name in (DICT_FILE, SPM_FILE):
        companion = path.parent / name
        if not companion.is_file():
            raise FileNotFoundError(f"{path}: a fairseq XLM-R checkpoint needs {name} beside it ({companion} is missing)")
        found[name] = companion
    return found


def _heads(state: dict) -> tuple[str, ...]:
    return tuple(sorted({k.split(".")[1] for k in state if k.startswith("classification_heads.")}))


def _config(arch: dict, state: dict, s: str, emb_norm: str | None, mask: int, heads, source: str) -> ModelConfig:
    """The XLM-R (or XL) preset with what the file decides: shapes, activation, dropouts, <mask>, heads.
    The fairseq layout itself (ids <s>=0 <pad>=1 </s>=2 <unk>=3, positions from pad + 1, one all-zero
    token-type row for the HF-compatible layout, eps 1e-5) is the preset's (formats.md section 4)."""
    tokens = state[s + "embed_tokens.weight"]
    n_layers = 1 + max(int(m.group(1)) for k in state if (m := re.match(re.escape(s) + r"layers\.(\d+)\.", k)))
    if "encoder_attention_heads" not in arch:
        raise CheckpointError(f"{source}: args/cfg lack encoder_attention_heads (cannot be read from shapes)")
    pre_norm = bool(arch.get("encoder_normalize_before", s + "layer_norm.weight" in state))
    return ModelConfig.from_preset((XLM_R_XL if pre_norm else XLM_R).preset).replace(
        vocab_size=tokens.shape[0], dim=tokens.shape[1], n_layers=n_layers,
        n_heads=int(arch["encoder_attention_heads"]), ffn_dim=state[s + "layers.0.fc1.weight"].shape[0],
        max_positions=state[s + "embed_positions.weight"].shape[0],
        activation=check_activation(arch.get("activation_fn", "gelu"), source, "activation_fn"),
        embed_norm=emb_norm is not None, dropout=float(arch.get("dropout", 0.1)),
        attention_dropout=float(arch.get("attention_dropout", 0.0)), mask_index=mask,
        num_labels=state[f"classification_heads.{heads[0]}.out_proj.weight"].shape[0] if heads else 2,
        classifier_dropout=arch.get("pooler_dropout"))


def read_fairseq(path: Path, payload: dict) -> Checkpoint:
    source = str(path)
    files = _companions(path)
    state = _split_in_proj(dict(payload["model"]))
    top, emb_norm = _layout(state, source)
    s = top + "sentence_encoder."
    heads = _heads(state)
    if len(heads) > 1:
        raise CheckpointError(f"{source}: several classification heads ({', '.join(heads)}); "
                              "keep one (del ckpt['model'] keys of the others) before loading")
    mask = _dict_rows(files[DICT_FILE], state[s + "embed_tokens.weight"].shape[0])
    config = _config(_arch(payload, source), state, s, emb_norm, mask, heads, source)
    ours = to_internal(fairseq_table(top, emb_norm, heads), state, config.n_layers, "fairseq", source)
    ours["embed.token_types.weight"] = torch.zeros(1, config.dim, dtype=ours["embed.tokens.weight"].dtype)
    return Checkpoint(config, ours, source, "fairseq", tokenizer_files=files)
