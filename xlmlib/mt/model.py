"""xlmlib.Translator: XLM's encoder-decoder (shared/reference/xlm-mt.md; section 6 is the contract).

The encoder is a MaskedLM (the original's encoder carries its own `pred_layer`, kept so a checkpoint
round-trips), the decoder a decoder.Decoder; nothing is shared between them. Both halves use one
ModelConfig (the original has one n_layers for both); `decoder_layers` allows a different depth.

Framing (section 3): source and target rows are `</s> w1 ... wn </s>`, right-padded; decoding starts
from `</s>`; encoder `langs` = source language, decoder `langs` = target language on every position.
Shape legend as in model.py; S source tokens, T target tokens.
"""

from __future__ import annotations

import logging
import warnings

import torch
from torch import nn

from .. import losses
from ..attention import KVCache
from ..config import ModelConfig
from ..heads import MaskedLM
from ..model import Output, fill_sinusoidal, init_weights
from . import search
from .decoder import Decoder

logger = logging.getLogger(__name__)


class Translator(nn.Module):
    # Task facts (tasks.py lists this class): xlmlib.load(src, task="translation"); transformers has no such class.
    task = "translation"
    head_prefixes: tuple[str, ...] = ()
    hf_suffix: tuple[tuple[str, str], ...] = ()
    finetune_task: str | None = None

    def __init__(self, config: ModelConfig, *, decoder_layers: int | None = None):
        super().__init__()
        self.config = config.replace(causal=False)
        self.encoder = MaskedLM(self.config)
        self.decoder = Decoder(self.config.replace(n_layers=decoder_layers or self.config.n_layers))
        self.new_weights: tuple[str, ...] = ()

    # -- loading and saving ------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, src, *, dtype=None, device=None) -> Translator:
        """An original XLM translation `.pth` (either layout of xlm-mt.md section 2; BPE codes*/vocab*
        beside it) or a folder written by save_pretrained."""
        from .checkpoint import load_translator

        return load_translator(cls, src, dtype=dtype, device=device)

    @classmethod
    def from_encoder(cls, src, *, dtype=None, device=None, decoder_layers: int | None = None) -> Translator:
        """Both halves from one pretrained encoder checkpoint (an XLM MLM/CLM .pth, an XLM-R folder, ...),
        as the original's --reload_model enc.pth,enc.pth starts unsupervised MT; the decoder's
        cross-attention is newly initialised and listed in `new_weights` (and logged)."""
        from .checkpoint import translator_from_encoder

        return translator_from_encoder(cls, src, dtype=dtype, device=device, decoder_layers=decoder_layers)

    def save_pretrained(self, directory) -> None:
        """model.safetensors + config.json (atomic writes); from_pretrained(directory) restores it exactly."""
        from .checkpoint import save_translator

        save_translator(self, directory)

    def head_options(self) -> dict:
        n = self.decoder.config.n_layers
        return {} if n == self.config.n_layers else {"decoder_layers": n}

    def reset_parameters(self) -> None:
        for module in self.modules():
            init_weights(module, self.config.init_std)
        if self.config.sinusoidal:
            fill_sinusoidal(self.encoder.embed)
            fill_sinusoidal(self.decoder.embed)

    # -- forward ---------------------------------------------------------------------------------------
    def encode(self, input_ids, attention_mask=None, langs=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder output (B S D) and the source mask (B S, True = real token)."""
        mask = _mask(input_ids, attention_mask, self.config.pad_index)
        h, _ = self.encoder.encode(input_ids, mask, langs)
        return h, mask

    def forward(self, input_ids, attention_mask=None, langs=None, decoder_input_ids=None,
                decoder_attention_mask=None, decoder_langs=None, labels=None) -> Output:
        """Teacher forcing: logits (B T V) at every decoder position; position j predicts token j + 1, so
        loss = token-mean cross-entropy of logits[:, :-1] against labels[:, 1:] (-100 ignored)."""
        if decoder_input_ids is None:
            raise ValueError("Translator needs decoder_input_ids (the framed target: </s> y1 ... ym </s>)")
        enc, src_mask = self.encode(input_ids, attention_mask, langs)
        tgt_mask = _mask(decoder_input_ids, decoder_attention_mask, self.config.pad_index)
        h = self.decoder.decode(decoder_input_ids, self.decoder.memory(enc), src_mask, tgt_mask, decoder_langs)
        logits = self.decoder.logits(h)
        loss = None
        if labels is not None:
            if labels.shape != decoder_input_ids.shape:
                raise ValueError(f"labels have shape {tuple(labels.shape)}, decoder_input_ids "
                                 f"{tuple(decoder_input_ids.shape)}: they must be aligned")
            loss = losses.full_lm_loss(logits[:, :-1], labels[:, 1:])
        return Output(last_hidden_state=h, logits=logits, loss=loss)

    # -- decoding ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, input_ids, attention_mask=None, langs=None, *, tgt_lang=None, num_beams: int = 1,
                 max_new_tokens: int | None = None, length_penalty: float = 1.0,
                 early_stopping: bool = False) -> torch.Tensor:
        """Translations (B L) as `</s> y1 ... ym </s>` then pad, by the original's rules: num_beams=1 is
        greedy (not a 1-beam search); max_new_tokens=None allows int(1.5 * longest source + 10) slots."""
        if num_beams < 1:
            raise ValueError(f"num_beams must be >= 1, got {num_beams}")
        cfg = self.config
        enc, src_mask = self.encode(input_ids, attention_mask, langs)
        max_len = self._max_len(src_mask.sum(1), max_new_tokens)
        B, device = input_ids.shape[0], input_ids.device
        tgt = self._tgt_langs(tgt_lang, B, device)
        if num_beams == 1:
            return search.greedy(Stepper(self.decoder, enc, src_mask, tgt), B, max_len, cfg.eos_index,
                                    cfg.pad_index, device)
        rows = torch.arange(B, device=device).repeat_interleave(num_beams)
        stepper = Stepper(self.decoder, enc[rows], src_mask[rows], tgt[rows] if torch.is_tensor(tgt) else tgt)
        return search.beam_search(stepper, B, num_beams, max_len, cfg.eos_index, cfg.pad_index,
                                     length_penalty=length_penalty, early_stopping=early_stopping, device=device)

    def _max_len(self, source_lengths, max_new_tokens) -> int:
        max_len = search.max_len_for(source_lengths, max_new_tokens)
        limit = self.decoder.config.max_tokens
        if max_len > limit:
            # The original crashes when a row reaches its last position row; stop there instead.
            warnings.warn(f"translations are cut at {limit} tokens (the position table's size); "
                          f"{max_len} were allowed", stacklevel=3)
            max_len = limit
        return max_len

    def _tgt_langs(self, tgt_lang, batch_size, device):
        if not self.decoder.config.has_lang_emb:
            return None
        if tgt_lang is None:
            codes = ", ".join(f"{c}={i}" for i, c in enumerate(self.config.langs)) or f"0..{self.config.n_langs - 1}"
            raise ValueError(f"this translator has language embeddings: pass tgt_lang= a language id ({codes})")
        tgt = torch.as_tensor(tgt_lang, device=device).reshape(-1)
        return tgt.expand(batch_size).reshape(batch_size, 1) if tgt.numel() == 1 else tgt.reshape(batch_size, 1)


def _mask(ids, mask, pad_index):
    if ids.dim() != 2:
        raise ValueError(f"ids must have shape (batch, tokens), got {tuple(ids.shape)}")
    return (ids != pad_index) if mask is None else mask.bool()


class Stepper:
    """One decoder step at a time over a fixed encoder output: self-attention keys/values in a KVCache,
    cross-attention keys/values computed once (decoder.memory)."""

    def __init__(self, decoder: Decoder, enc, src_mask, tgt_langs):
        self.decoder, self.src_mask, self.langs = decoder, src_mask, tgt_langs
        self.memory = decoder.memory(enc)
        self.cache = KVCache()

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        past = self.cache.length
        mask = torch.ones(tokens.shape[0], past + 1, dtype=torch.bool, device=tokens.device)
        h = self.decoder.decode(tokens[:, None], self.memory, self.src_mask, mask, self.langs, self.cache)
        return self.decoder.logits(h[:, -1]).float()

    def reorder(self, index: torch.Tensor) -> None:
        # Beams only move within their sentence, whose rows share one source: the memory stays.
        self.cache.reorder(index)
        if torch.is_tensor(self.langs):
            self.langs = self.langs[index]

