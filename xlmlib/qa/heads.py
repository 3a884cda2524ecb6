"""The extractive QA heads: QuestionAnswering (start/end logits, HF's XLMRobertaForQuestionAnswering and
XLMForQuestionAnsweringSimple) and QuestionAnsweringBeam, the beam-search span head of HF's
XLMForQuestionAnswering (XLNet-style SQuAD head).

Training (labels given) scores the gold start, conditions the end on it, and adds the answerability loss
when cls_index and is_impossible are given. Inference keeps the start_n_top starts, conditions end_n_top
ends on each, and scores answerability against the probability-weighted start state. Despite their HF
names, the *_top_log_probs are softmax probabilities (modeling_xlm XLMSQuADHead).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import losses
from ..config import ModelConfig
from ..heads import TaskModel
from ..layout import Layout
from ..linear import Linear
from ..model import Output
from ..routes import Routes


class QuestionAnswering(TaskModel):
    """Extractive QA: start/end logits per token. labels = (start_positions, end_positions); positions
    outside the sequence are clamped and ignored, as in HF's span heads."""

    task = "question-answering"
    head_prefixes = ("qa_outputs",)
    finetune_task = "qa"
    hf_suffix = (("xlm", "ForQuestionAnsweringSimple"), ("roberta", "ForQuestionAnswering"))

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.qa_outputs = Linear(config.dim, 2)

    def outputs(self, h, routes: Routes) -> Output:
        start, end = self.qa_outputs(h, routes).unbind(-1)
        return Output(start_logits=start, end_logits=end)

    def loss(self, out: Output, labels, reduction: str = "mean"):
        """labels = (start_positions, end_positions)."""
        return losses.span_loss(out.start_logits, out.end_logits, *labels, reduction=reduction)


def _masked(x, p_mask):
    if p_mask is None:
        return x
    # fp16 cannot hold 1e30; 65500 is its largest normal value (modeling_xlm XLMPoolerStartLogits).
    big = 65500 if x.dtype == torch.float16 else 1e30
    return x * (1 - p_mask) - big * p_mask


class BeamQAHead(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        D = cfg.dim
        self.start = Linear(D, 1)
        self.end_in = Linear(2 * D, D)
        self.end_norm = nn.LayerNorm(D, eps=cfg.norm_eps)
        self.end_out = Linear(D, 1)
        self.cls_in = Linear(2 * D, D)
        self.cls_out = Linear(D, 1, bias=False)

    def start_logits(self, h, p_mask, routes: Routes | None = None):
        return _masked(self.start(h, routes).squeeze(-1), p_mask)

    def end_logits(self, h, start_states, p_mask, routes: Routes | None = None):
        x = self.end_norm(torch.tanh(self.end_in(torch.cat([h, start_states], dim=-1), routes)))
        return _masked(self.end_out(x, routes).squeeze(-1), p_mask)

    def answer_logits(self, h, start_states, cls_index, routes: Routes | None = None):
        if cls_index is None:
            cls_state = h[:, -1]  # HF's default: the last token
        else:
            cls_state = h.gather(1, cls_index[:, None, None].expand(-1, 1, h.shape[-1])).squeeze(1)
        x = torch.tanh(self.cls_in(torch.cat([start_states, cls_state], dim=-1), routes))
        return self.cls_out(x, routes).squeeze(-1)


class QuestionAnsweringBeam(TaskModel):
    """labels = (start_positions, end_positions[, is_impossible]); p_mask marks tokens that cannot be part
    of an answer (1.0 = excluded); cls_index is the token whose state scores answerability (default: last)."""

    task = "question-answering-beam"
    head_prefixes = ("qa_head",)
    finetune_task = "qa-beam"
    hf_suffix = (("xlm", "ForQuestionAnswering"),)  # transformers has no XLM-R beam head

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.qa_head = BeamQAHead(config)

    def head(self, h, layout: Layout, labels=None, p_mask=None, cls_index=None) -> Output:
        """With labels, the loss (gold start conditions the end); without, the beam over starts and ends."""
        start_logits = self.qa_head.start_logits(h, p_mask, layout.routes)
        if labels is not None:
            loss = self._loss(h, start_logits, p_mask, cls_index, layout.routes, *labels)
            return Output(loss=loss, start_logits=start_logits)
        return self._beam(h, start_logits, p_mask, cls_index, layout.routes)

    def _loss(self, h, start_logits, p_mask, cls_index, routes, start_positions, end_positions, is_impossible=None):
        gold = h.gather(1, start_positions[:, None, None].expand(-1, 1, h.shape[-1]))  # B 1 D
        end_logits = self.qa_head.end_logits(h, gold.expand_as(h), p_mask, routes)
        cls_logits = None
        if cls_index is not None and is_impossible is not None:
            cls_logits = self.qa_head.answer_logits(h, gold.squeeze(1), cls_index, routes)
        return losses.beam_span_loss(start_logits, end_logits, start_positions, end_positions, cls_logits,
                                     is_impossible)

    def _beam(self, h, start_logits, p_mask, cls_index, routes):
        cfg = self.config
        B, T, D = h.shape
        start_probs = F.softmax(start_logits, dim=-1)
        start_top, start_idx = torch.topk(start_probs, min(cfg.start_n_top, T), dim=-1)  # B N (fewer if T is short)
        start_states = h.gather(1, start_idx[..., None].expand(-1, -1, D))  # B N D
        start_states = start_states[:, None].expand(-1, T, -1, -1)  # B T N D
        h_exp = h[:, :, None].expand_as(start_states)
        end_mask = p_mask[..., None] if p_mask is not None else None
        end_probs = F.softmax(self.qa_head.end_logits(h_exp, start_states, end_mask, routes), dim=1)  # B T N
        end_top, end_idx = torch.topk(end_probs, min(cfg.end_n_top, T), dim=1)  # B M N
        weighted_start = torch.einsum("btd,bt->bd", h, start_probs)
        cls_logits = self.qa_head.answer_logits(h, weighted_start, cls_index, routes)
        return Output(
            start_logits=start_logits, start_top_log_probs=start_top, start_top_index=start_idx,
            end_top_log_probs=end_top.reshape(B, -1), end_top_index=end_idx.reshape(B, -1), cls_logits=cls_logits)
