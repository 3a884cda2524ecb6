"""Original facebookresearch/XLM checkpoints (`.pth`), with the BPE codes (and vocab) files beside them.

Layout: shared/reference/formats.md section 5 (XLM xlm/model/__init__.py build_model / reload,
xlm/trainer.py save_checkpoint, xlm/model/transformer.py). Encoder keys are those of HF XLM without
the `transformer.` prefix; the LM projection is `pred_layer.proj`, tied to `embeddings`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..config import ModelConfig
from ..family import XLM
from .hf import XLM_BASE
from .hf_config import lang_codes
from .mapping import CheckpointError, Table, to_internal
from .record import Checkpoint
from .stand_ins import plain

logger = logging.getLogger(__name__)

XLM_PTH = Table(
    name="original XLM .pth",
    base=XLM_BASE,
    heads={"xlm": (("lm_head.bias", "pred_layer.proj.bias"),)},
    # share_inout_emb (the default, and every public model) stores the embedding twice.
    tied=(("pred_layer.proj.weight", "embeddings.weight"),),
)
PARTS = ("encoder", "decoder")


def _weights(payload: dict, part: str | None, source: str) -> dict:
    if part is not None and part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    if "model" in payload:
        if part == "decoder":
            raise CheckpointError(f"{source}: an MLM/CLM checkpoint (`model` entry) has no decoder")
        return payload["model"]
    if part == "decoder":
        raise CheckpointError(f"{source}: the decoder of an XLM translation checkpoint has cross-attention "
                              "layers no encoder model holds; load the whole model with xlmlib.Translator.from_pretrained")
    if "encoder" not in payload:
        raise CheckpointError(f"{source}: an XLM checkpoint needs a `model` or `encoder` entry")
    logger.info("%s: translation checkpoint; loading its encoder (the decoder is not loaded)", source)
    return payload["encoder"]


def strip_module(state: dict) -> dict:
    """DDP saves `module.`-prefixed keys; XLM strips the prefix only when every key has it (build_model)."""
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def config_from_params(params: dict, state: dict, source: str) -> ModelConfig:
    """The XLM preset with what the file decides: shapes, languages, activation, dropouts, special ids."""
    for flag, what in (("asm", "adaptive softmax"), ("use_memory", "product-key memory layers")):
        if params.get(flag):
            raise CheckpointError(f"{source}: {what} ({flag}=True) is not supported")
    tokens = state["embeddings.weight"]
    n_layers = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("attentions."))
    has_langs = "lang_embeddings.weight" in state
    n_langs = state["lang_embeddings.weight"].shape[0] if has_langs else int(params.get("n_langs", 1))
    # XLM decides causality per call (clm_steps vs mlm_steps); a model trained only with CLM is causal.
    causal = bool(params.get("clm_steps")) and not params.get("mlm_steps")
    return ModelConfig.from_preset(XLM.preset).replace(
        vocab_size=tokens.shape[0], dim=tokens.shape[1], n_layers=n_layers, n_heads=int(params["n_heads"]),
        ffn_dim=state["ffns.0.lin1.weight"].shape[0], max_positions=state["position_embeddings.weight"].shape[0],
        sinusoidal=bool(params.get("sinusoidal_embeddings", False)), n_langs=n_langs,
        use_lang_emb=has_langs or n_langs == 1, langs=lang_codes(params.get("id2lang"), params.get("lang2id"), n_langs),
        activation="gelu" if params.get("gelu_activation", True) else "relu", causal=causal,
        dropout=float(params.get("dropout", 0.1)), attention_dropout=float(params.get("attention_dropout", 0.1)),
        pad_index=int(params.get("pad_index", 2)), bos_index=int(params.get("bos_index", 0)),
        eos_index=int(params.get("eos_index", 1)), unk_index=int(params.get("unk_index", 3)),
        mask_index=int(params.get("mask_index", 5)))


def vocab_of(payload: dict, rows: int, source: str) -> tuple[str, ...]:
    id2word = payload.get("dico_id2word")
    if id2word is None:
        return ()
    if len(id2word) != rows:
        raise CheckpointError(f"{source}: dico_id2word has {len(id2word)} words but the embedding has {rows} rows")
    return tuple(id2word[i] for i in range(rows))


def companion_file(path: Path, stem: str) -> Path | None:
    """The one file named `stem`* beside the checkpoint (XLM ships codes_xnli_15 + vocab_xnli_15, ...)."""
    found = sorted(p for p in path.parent.iterdir() if p.is_file() and p.name.startswith(stem))
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise CheckpointError(f"{path}: several {stem}* files beside it ({', '.join(p.name for p in found)}); "
                              "keep only the one that belongs to this model")
    return None


def read_xlm_pth(path: Path, payload: dict, part: str | None = None) -> Checkpoint:
    source = str(path)
    state = strip_module(_weights(payload, part, source))
    params = plain(payload["params"])
    config = config_from_params(params, state, source)
    vocab = vocab_of(payload, config.vocab_size, source)
    # The BPE codes are needed only for a tokenizer (Tokenizer.from_pretrained reports their absence);
    # weights, info and convert work without them.
    found = [companion_file(path, "codes"), companion_file(path, "vocab")]
    files = {p.name: p for p in found if p is not None}
    ours = to_internal(XLM_PTH, state, config.n_layers, "xlm", source)
    return Checkpoint(config, ours, source, "xlm-pth", tokenizer_files=files, vocab=vocab)
