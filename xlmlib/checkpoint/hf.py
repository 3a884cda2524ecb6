"""HF transformers layouts: XLM (modeling_xlm), XLM-R (modeling_xlm_roberta), XLM-R XL (modeling_xlm_roberta_xl).

Key names and config fields: shared/reference/formats.md sections 1 and 3, checked against transformers 5.x.
"""

from __future__ import annotations

from .. import tasks
from ..config import ModelConfig
from ..family import XLM, XLM_R, XLM_R_XL, Family, family_of
from .mapping import CheckpointError, Table

XLM_BASE = (
    ("embed.tokens", "embeddings"),
    ("embed.positions", "position_embeddings"),
    ("embed.langs", "lang_embeddings"),
    ("embed.norm", "layer_norm_emb"),
    ("layers.{i}.attn.q_proj", "attentions.{i}.q_lin"),
    ("layers.{i}.attn.k_proj", "attentions.{i}.k_lin"),
    ("layers.{i}.attn.v_proj", "attentions.{i}.v_lin"),
    ("layers.{i}.attn.out_proj", "attentions.{i}.out_lin"),
    ("layers.{i}.attn_norm", "layer_norm1.{i}"),
    ("layers.{i}.ffn.fc1", "ffns.{i}.lin1"),
    ("layers.{i}.ffn.fc2", "ffns.{i}.lin2"),
    ("layers.{i}.ffn_norm", "layer_norm2.{i}"),
)
_XLM_LM = (("lm_head.bias", "pred_layer.proj.bias"),)
_XLM_BEAM = (
    ("qa_head.start", "qa_outputs.start_logits.dense"),
    ("qa_head.end_in", "qa_outputs.end_logits.dense_0"),
    ("qa_head.end_norm", "qa_outputs.end_logits.LayerNorm"),
    ("qa_head.end_out", "qa_outputs.end_logits.dense_1"),
    ("qa_head.cls_in", "qa_outputs.answer_class.dense_0"),
    ("qa_head.cls_out", "qa_outputs.answer_class.dense_1"),
)
HF_XLM = Table(
    name="HF XLM",
    base=XLM_BASE,
    base_prefix="transformer.",
    heads={
        "XLMModel": (),
        "XLMWithLMHeadModel": _XLM_LM,
        "XLMForSequenceClassification": (("classifier.out_proj", "sequence_summary.summary"),),
        "XLMForTokenClassification": (("classifier", "classifier"),),
        "XLMForQuestionAnsweringSimple": (("qa_outputs", "qa_outputs"),),
        "XLMForQuestionAnswering": _XLM_BEAM,
        "XLMForMultipleChoice": (("classifier", "sequence_summary.summary"), ("logits_proj", "logits_proj")),
    },
    ignore=(r"(^|\.)position_ids$",),
    tied=(("pred_layer.proj.weight", "{base}embeddings.weight"),),
)


def _roberta_base(pre_norm: bool) -> tuple[tuple[str, str], ...]:
    layer = "encoder.layer.{i}."
    attn_norm = layer + ("attention.self_attn_layer_norm" if pre_norm else "attention.output.LayerNorm")
    ffn_norm = layer + ("LayerNorm" if pre_norm else "output.LayerNorm")
    pairs = [
        ("embed.tokens", "embeddings.word_embeddings"),
        ("embed.positions", "embeddings.position_embeddings"),
        ("embed.token_types", "embeddings.token_type_embeddings"),
        ("layers.{i}.attn.q_proj", layer + "attention.self.query"),
        ("layers.{i}.attn.k_proj", layer + "attention.self.key"),
        ("layers.{i}.attn.v_proj", layer + "attention.self.value"),
        ("layers.{i}.attn.out_proj", layer + "attention.output.dense"),
        ("layers.{i}.attn_norm", attn_norm),
        ("layers.{i}.ffn.fc1", layer + "intermediate.dense"),
        ("layers.{i}.ffn.fc2", layer + "output.dense"),
        ("layers.{i}.ffn_norm", ffn_norm),
        ("pooler.dense", "pooler.dense"),
    ]
    pairs.append(("final_norm", "encoder.LayerNorm") if pre_norm else ("embed.norm", "embeddings.LayerNorm"))
    return tuple(pairs)


def _roberta_table(family: Family) -> Table:
    lm = (("lm_head.dense", "lm_head.dense"), ("lm_head.norm", "lm_head.layer_norm"), ("lm_head.bias", "lm_head.bias"))
    model = family.hf_prefix
    return Table(
        name=f"HF {family.name}",
        base=_roberta_base(family.pre_norm),
        base_prefix="roberta.",
        heads={
            f"{model}Model": (),
            f"{model}ForMaskedLM": lm,
            f"{model}ForCausalLM": lm,
            f"{model}ForSequenceClassification": (("classifier", "classifier"),),
            f"{model}ForTokenClassification": (("classifier", "classifier"),),
            f"{model}ForQuestionAnswering": (("qa_outputs", "qa_outputs"),),
            f"{model}ForMultipleChoice": (("classifier", "classifier"),),
        },
        # Buffers that older transformers versions saved.
        ignore=(r"(^|\.)position_ids$", r"(^|\.)token_type_ids$"),
        tied=(("lm_head.decoder.weight", "{base}embeddings.word_embeddings.weight"),
              ("lm_head.decoder.bias", "lm_head.bias")),
    )


HF_XLMR = _roberta_table(XLM_R)
HF_XLMR_XL = _roberta_table(XLM_R_XL)

TABLES = {XLM.name: HF_XLM, XLM_R.name: HF_XLMR, XLM_R_XL.name: HF_XLMR_XL}
# A head key that identifies the task when config.json names no architecture, most specific first.
_SIGNATURES = (
    ("qa_outputs.start_logits.dense.weight", "question-answering-beam"),
    ("logits_proj.weight", "multiple-choice"),
    ("sequence_summary.summary.weight", "sequence-classification"),
    ("pred_layer.proj.bias", "masked-lm"),
    ("lm_head.dense.weight", "masked-lm"),
    ("classifier.out_proj.weight", "sequence-classification"),
    ("qa_outputs.weight", "question-answering"),
    ("classifier.weight", "token-classification"),
)


def table_for(cfg: ModelConfig) -> Table:
    return TABLES[family_of(cfg).name]


def architecture_for(cfg: ModelConfig, task_cls) -> str:
    arch = family_of(cfg).hf_architecture(task_cls)
    if arch is None:
        raise CheckpointError(f"transformers has no {table_for(cfg).name} class for {task_cls.__name__}; "
                              "save with format='xlmlib'")
    return arch


def base_prefixed(cfg: ModelConfig, architecture: str) -> bool:
    """transformers keeps a head model's encoder under `transformer.` / `roberta.`; the bare model (the one
    architecture without head weights) keeps it at the top level."""
    return bool(table_for(cfg).heads.get(architecture))


def guess_architecture(cfg: ModelConfig, keys) -> str:
    """The architecture named by the head keys present (used when config.json names none)."""
    keys = set(keys)
    task = next((name for key, name in _SIGNATURES if key in keys), "encoder")
    return architecture_for(cfg, tasks.task_class(task))


def task_for_architecture(cfg: ModelConfig, architecture: str) -> str | None:
    """Our class name for an HF architecture (XLMWithLMHeadModel serves both LMs: config.causal decides)."""
    family = family_of(cfg)
    found = [cls for cls in tasks.task_classes() if family.hf_architecture(cls) == architecture]
    found.sort(key=lambda cls: cls.causal != cfg.causal)
    return found[0].__name__ if found else None
