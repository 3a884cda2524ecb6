"""HF transformers layouts: XLM (modeling_xlm), XLM-R (modeling_xlm_roberta), XLM-R XL (modeling_xlm_roberta_xl).

Key names and config fields: shared/reference/formats.md sections 1 and 3, checked against transformers 5.x.
"""

from __future__ import annotations

from ..config import ModelConfig
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


def _roberta_table(name: str, model: str, pre_norm: bool) -> Table:
    lm = (("lm_head.dense", "lm_head.dense"), ("lm_head.norm", "lm_head.layer_norm"), ("lm_head.bias", "lm_head.bias"))
    return Table(
        name=name,
        base=_roberta_base(pre_norm),
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


HF_XLMR = _roberta_table("HF XLM-R", "XLMRoberta", pre_norm=False)
HF_XLMR_XL = _roberta_table("HF XLM-R XL", "XLMRobertaXL", pre_norm=True)

# Our class name -> architecture suffix; the family prefix comes from the config.
_TASKS_XLM = {
    "Encoder": "XLMModel", "MaskedLM": "XLMWithLMHeadModel", "CausalLM": "XLMWithLMHeadModel",
    "SequenceClassifier": "XLMForSequenceClassification", "TokenClassifier": "XLMForTokenClassification",
    "QuestionAnswering": "XLMForQuestionAnsweringSimple", "QuestionAnsweringBeam": "XLMForQuestionAnswering",
    "MultipleChoice": "XLMForMultipleChoice",
}
_TASKS_ROBERTA = {
    "Encoder": "Model", "MaskedLM": "ForMaskedLM", "CausalLM": "ForCausalLM",
    "SequenceClassifier": "ForSequenceClassification", "TokenClassifier": "ForTokenClassification",
    "QuestionAnswering": "ForQuestionAnswering", "MultipleChoice": "ForMultipleChoice",
}
# Head keys that identify an architecture when config.json does not name one.
_SIGNATURES = (
    ("qa_outputs.start_logits.dense.weight", "XLMForQuestionAnswering"),
    ("logits_proj.weight", "XLMForMultipleChoice"),
    ("sequence_summary.summary.weight", "XLMForSequenceClassification"),
    ("pred_layer.proj.bias", "XLMWithLMHeadModel"),
    ("lm_head.dense.weight", "{m}ForMaskedLM"),
    ("classifier.out_proj.weight", "{m}ForSequenceClassification"),
    ("qa_outputs.weight", "{qa}"),
)


def table_for(cfg: ModelConfig) -> Table:
    if cfg.head_style == "xlm":
        return HF_XLM
    return HF_XLMR_XL if cfg.pre_norm else HF_XLMR


def architecture_for(cfg: ModelConfig, task: str) -> str:
    if cfg.head_style == "xlm":
        arch = _TASKS_XLM.get(task)
    else:
        suffix = _TASKS_ROBERTA.get(task)
        arch = suffix and ("XLMRobertaXL" if cfg.pre_norm else "XLMRoberta") + suffix
    if arch is None:
        raise CheckpointError(f"transformers has no {table_for(cfg).name} class for {task}; save with format='xlmlib'")
    return arch


def guess_architecture(cfg: ModelConfig, keys) -> str:
    """The architecture named by the head keys present (used when config.json names none)."""
    model = "XLMRobertaXL" if cfg.pre_norm else "XLMRoberta"
    qa = "XLMForQuestionAnsweringSimple" if cfg.head_style == "xlm" else f"{model}ForQuestionAnswering"
    keys = set(keys)
    for key, arch in _SIGNATURES:
        if key in keys:
            return arch.format(m=model, qa=qa)
    if "classifier.weight" in keys:
        return "XLMForTokenClassification" if cfg.head_style == "xlm" else f"{model}ForTokenClassification"
    return "XLMModel" if cfg.head_style == "xlm" else f"{model}Model"


def task_for_architecture(cfg: ModelConfig, architecture: str) -> str | None:
    """Our class for an HF architecture name (XLMWithLMHeadModel serves both LMs: config.causal decides)."""
    for task in ("CausalLM", "MaskedLM") if cfg.causal else ("MaskedLM", "CausalLM"):
        if architecture_for_or_none(cfg, task) == architecture:
            return task
    tasks = _TASKS_XLM if cfg.head_style == "xlm" else _TASKS_ROBERTA
    return next((t for t in tasks if architecture_for_or_none(cfg, t) == architecture), None)


def architecture_for_or_none(cfg: ModelConfig, task: str) -> str | None:
    try:
        return architecture_for(cfg, task)
    except CheckpointError:
        return None
