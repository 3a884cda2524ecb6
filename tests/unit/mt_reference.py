"""An independent reading of the original XLM translation model, for tests: random weights under the
original key names, the .pth writer (both save layouts of shared/reference/xlm-mt.md section 2), and a
plain forward written from the fact sheet's section 1 (explicit per-head loops, -inf masks, fp32
softmax), which shares no code with xlmlib.

Key names: xlm-mt.md section 1 (`position_embeddings`, `lang_embeddings`, `embeddings`, `layer_norm_emb`,
`attentions.i.{q,k,v,out}_lin`, `layer_norm1.i`, `ffns.i.lin1/2`, `layer_norm2.i`, decoder-only
`layer_norm15.i` and `encoder_attn.i.*`, `pred_layer.proj`).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

EPS = 1e-12


def part_state(V, D, n_layers, n_langs, *, decoder: bool, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)

    def r(*shape, scale=0.3):
        return torch.randn(*shape, generator=g) * scale

    s = {"position_embeddings.weight": r(512, D)}
    if n_langs > 1:
        s["lang_embeddings.weight"] = r(n_langs, D)
    s["embeddings.weight"] = r(V, D)
    s["embeddings.weight"][2] = 0  # padding_idx 2
    s["layer_norm_emb.weight"], s["layer_norm_emb.bias"] = 1 + r(D, scale=0.1), r(D, scale=0.1)
    blocks = ["attentions"] + (["encoder_attn"] if decoder else [])
    for i in range(n_layers):
        for block in blocks:
            for lin in ("q_lin", "k_lin", "v_lin", "out_lin"):
                s[f"{block}.{i}.{lin}.weight"], s[f"{block}.{i}.{lin}.bias"] = r(D, D), r(D, scale=0.1)
        norms = ["layer_norm1", "layer_norm2"] + (["layer_norm15"] if decoder else [])
        for norm in norms:
            s[f"{norm}.{i}.weight"], s[f"{norm}.{i}.bias"] = 1 + r(D, scale=0.1), r(D, scale=0.1)
        s[f"ffns.{i}.lin1.weight"], s[f"ffns.{i}.lin1.bias"] = r(4 * D, D), r(4 * D, scale=0.1)
        s[f"ffns.{i}.lin2.weight"], s[f"ffns.{i}.lin2.bias"] = r(D, 4 * D), r(D, scale=0.1)
    s["pred_layer.proj.weight"] = s["embeddings.weight"]  # share_inout_emb: saved under both names
    s["pred_layer.proj.bias"] = r(V, scale=0.1)
    return s


def params(V, D, n_layers, n_heads, n_langs, *, gelu: bool) -> dict:
    lang2id = {lg: i for i, lg in enumerate(["de", "en", "fr", "ro"][:n_langs])}
    return {"emb_dim": D, "n_layers": n_layers, "n_heads": n_heads, "gelu_activation": gelu,
            "share_inout_emb": True, "sinusoidal_embeddings": False, "use_lang_emb": True, "asm": False,
            "use_memory": False, "n_langs": n_langs, "lang2id": lang2id, "id2lang": {v: k for k, v in lang2id.items()},
            "n_words": V, "bos_index": 0, "eos_index": 1, "pad_index": 2, "unk_index": 3, "mask_index": 5,
            "dropout": 0.1, "attention_dropout": 0.1, "encoder_only": False,
            # tuples and tuple-keyed dicts as 2019 files hold them (xlm-mt.md section 2)
            "bt_steps": [("en", "fr", "en")], "lambda_ae_config": (("0", 1.0), ("100000", 0.1)),
            "mask_scores": np.ones(V), "pred_probs": torch.FloatTensor([0.8, 0.1, 0.1])}


def write_mt_pth(path: Path, enc: dict, dec: dict, prm: dict, *, layout: str = "head", ddp: bool = False,
                 legacy: bool = False) -> Path:
    """layout "head": save_checkpoint since 312bf28; "2019": save_model of Feb-Jul 2019 (no epoch/metrics)."""
    if ddp:
        enc, dec = ({f"module.{k}": v for k, v in s.items()} for s in (enc, dec))
    words = ["<s>", "</s>", "<pad>", "<unk>"] + [f"<special{j}>" for j in range(10)]
    words += [f"w{j}" for j in range(prm["n_words"] - len(words))]
    payload = {"encoder": enc, "decoder": dec, "params": prm, "dico_id2word": dict(enumerate(words)),
               "dico_word2id": {w: j for j, w in enumerate(words)}, "dico_counts": {w: 1 for w in words}}
    if layout == "head":
        payload.update({"epoch": 2, "n_total_iter": 100, "best_metrics": {"valid_en-fr_mt_bleu": 1.5},
                        "best_stopping_criterion": 1.5})
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path, _use_new_zipfile_serialization=not legacy)
    return path


def _ln(x, s, name):
    return F.layer_norm(x, x.shape[-1:], s[f"{name}.weight"], s[f"{name}.bias"], EPS)


def _lin(x, s, name):
    return x @ s[f"{name}.weight"].T + s[f"{name}.bias"]


def _attention(x, kv, key_ok, s, name, n_heads):
    """One multi-head attention, head by head; key_ok (B Tq Tk) True where attending is allowed."""
    _B, _T, D = x.shape
    dh = D // n_heads
    q, k, v = _lin(x, s, f"{name}.q_lin"), _lin(kv, s, f"{name}.k_lin"), _lin(kv, s, f"{name}.v_lin")
    heads = []
    for h in range(n_heads):
        sl = slice(h * dh, (h + 1) * dh)
        scores = (q[..., sl] / math.sqrt(dh)) @ k[..., sl].transpose(1, 2)
        scores = scores.masked_fill(~key_ok, float("-inf"))
        heads.append(torch.softmax(scores.float(), dim=-1) @ v[..., sl])
    return _lin(torch.cat(heads, dim=-1), s, f"{name}.out_lin")


def forward_part(s, ids, lengths, lang, n_layers, n_heads, act, *, enc_out=None, src_lengths=None):
    """Original TransformerModel 'fwd' (batch-major here): embeddings, layers, row masks."""
    B, T = ids.shape
    pos = torch.arange(T)[None].expand(B, T)
    x = s["embeddings.weight"][ids] + s["position_embeddings.weight"][pos]
    if "lang_embeddings.weight" in s:
        x = x + s["lang_embeddings.weight"][torch.full_like(ids, lang)]
    x = _ln(x, s, "layer_norm_emb")
    rows = (torch.arange(T)[None] < lengths[:, None]).float()[..., None]
    x = x * rows
    if enc_out is None:  # encoder: keys masked by length
        self_ok = (torch.arange(T)[None, None, :] < lengths[:, None, None]).expand(B, T, T)
    else:  # decoder: lower triangle only (no padding term)
        self_ok = torch.tril(torch.ones(T, T, dtype=torch.bool))[None].expand(B, T, T)
    for i in range(n_layers):
        x = _ln(x + _attention(x, x, self_ok, s, f"attentions.{i}", n_heads), s, f"layer_norm1.{i}")
        if enc_out is not None:
            S = enc_out.shape[1]
            src_ok = (torch.arange(S)[None, None, :] < src_lengths[:, None, None]).expand(B, T, S)
            x = _ln(x + _attention(x, enc_out, src_ok, s, f"encoder_attn.{i}", n_heads), s, f"layer_norm15.{i}")
        ffn = _lin(act(_lin(x, s, f"ffns.{i}.lin1")), s, f"ffns.{i}.lin2")
        x = _ln(x + ffn, s, f"layer_norm2.{i}") * rows
    return x


def reference_logits(enc, dec, prm, src, src_len, src_lang, tgt, tgt_len, tgt_lang):
    act = (lambda t: F.gelu(t)) if prm["gelu_activation"] else F.relu
    L, H = prm["n_layers"], prm["n_heads"]
    enc_out = forward_part(enc, src, src_len, src_lang, L, H, act)
    h = forward_part(dec, tgt, tgt_len, tgt_lang, L, H, act, enc_out=enc_out, src_lengths=src_len)
    return h @ dec["pred_layer.proj.weight"].T + dec["pred_layer.proj.bias"]
