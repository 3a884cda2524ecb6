"""`bench.py tokenizers`: ours vs transformers on the same Tatoeba text, alternating runs, medians.

Cases:
- XLM-R: batches through XLMRTokenizer vs transformers' XLMRobertaTokenizer (Rust `tokenizers`, from
  the asset tokenizer.json), both padding to the batch and returning torch tensors.
- XLM en-fr, English text: XLMTokenizer vs transformers' XLMTokenizer through its public batched call
  (English is its default language, and transformers 5 ignores lang= on that call anyway).
- XLM XNLI-15, 13 languages: each line with its own language. transformers' public call cannot do
  that (it drops lang=), so its per-language pipeline `_tokenize(text, lang=...)` + ids + specials is
  timed instead; that skips some of its per-call overhead, which only favours transformers.
Output identity is checked on every sentence before timing.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import tempfile
from pathlib import Path

from bench_model import alternate

XNLI_CODES = {"ara": "ar", "bul": "bg", "deu": "de", "ell": "el", "spa": "es", "fra": "fr", "hin": "hi",
              "rus": "ru", "swh": "sw", "tur": "tr", "urd": "ur", "vie": "vi"}


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split("\n")[:-1]


def _batches(items, size):
    return [items[i:i + size] for i in range(0, len(items), size)]


def case_xlmr(assets, n, repeats, batch_size):
    import torch
    from tokenizers import AddedToken
    from transformers import XLMRobertaTokenizer

    from xlmlib.tokenize import XLMRTokenizer

    files = sorted((assets / "tatoeba-laser-v1").glob("tatoeba.*"))
    pool = [line for f in files for line in _lines(f)]
    lines = pool[:: max(1, len(pool) // n)][:n]
    ours = XLMRTokenizer(assets / "xlmr-spm-rebuilt" / "sentencepiece.bpe.model")
    theirs = XLMRobertaTokenizer(tokenizer_file=str(assets / "xlmr-tokenizer-json" / "tokenizer.json"))
    theirs.add_special_tokens({"mask_token": AddedToken("<mask>", lstrip=True, normalized=False, special=True)})
    batches = _batches(lines, batch_size)
    same = sum(torch.equal(ours(b)["input_ids"], theirs(b, padding=True, truncation=True, max_length=512,
                                                         return_tensors="pt")["input_ids"]) for b in batches)
    mismatched = [line for line in lines if ours.encode(line) != theirs(line)["input_ids"]] if same < len(batches) else []
    # Where transformers differs, check that ours is sentencepiece + the fairseq shift (the reference).
    spm_ok = all(ours.encode(line) == [0] + [i + 1 if i else 3 for i in ours.sp.encode(line)] + [2] for line in mismatched)
    t_ours, t_theirs = alternate(
        lambda: [ours(b) for b in batches],
        lambda: [theirs(b, padding=True, truncation=True, max_length=512, return_tensors="pt") for b in batches],
        repeats)
    note = f"ids identical on {len(lines) - len(mismatched)}/{len(lines)} sentences"
    if mismatched:
        note += (f"; on the other {len(mismatched)} transformers differs from sentencepiece and ours "
                 f"{'equals' if spm_ok else 'does NOT equal'} sentencepiece")
    return (f"XLM-R, batches of {batch_size}, padded, pt tensors", len(lines), t_ours, t_theirs, note)


def _hf_xlm(tok):
    """transformers' XLMTokenizer on the same vocabulary, via our saved vocab.json + merges.txt."""
    import transformers

    out = Path(tempfile.mkdtemp(prefix="bench-xlm-"))
    tok.save_pretrained(out)
    return transformers.XLMTokenizer(str(out / "vocab.json"), str(out / "merges.txt"), lang2id=tok.lang2id,
                                     id2lang={v: k for k, v in tok.lang2id.items()},
                                     do_lowercase_and_remove_accent=tok.do_lowercase_and_remove_accent)


def case_xlm_english(assets, n, repeats, batch_size):
    from xlmlib.tokenize import XLMTokenizer

    files = sorted((assets / "tatoeba-laser-v1").glob("tatoeba.*-eng.eng"))
    lines = [line for f in files for line in _lines(f)][:n]
    ours = XLMTokenizer.from_pretrained(assets / "xlm-bpe-fastbpe", release="enfr")
    theirs = _hf_xlm(ours)
    batches = _batches(lines, batch_size)
    kw = {"padding": True, "truncation": True, "max_length": 512, "return_tensors": "pt"}
    bad = sum(ours(b, lang="en")["input_ids"].tolist() != theirs(b, **kw)["input_ids"].tolist() for b in batches)
    t_ours, t_theirs = alternate(lambda: [ours(b, lang="en") for b in batches],
                                  lambda: [theirs(b, **kw) for b in batches], repeats)
    return (f"XLM en-fr vocab, English, batches of {batch_size}, padded, pt tensors", len(lines), t_ours, t_theirs,
            f"ids identical in {len(batches) - bad}/{len(batches)} batches (tokens: tests)")


def case_xlm_multilingual(assets, n, repeats, batch_size):
    from xlmlib.tokenize import XLMTokenizer

    folder = assets / "tatoeba-laser-v1"
    pairs = [(line, lang) for code, lang in XNLI_CODES.items() for line in _lines(folder / f"tatoeba.{code}-eng.{code}")]
    pairs += [(line, "en") for f in sorted(folder.glob("tatoeba.*-eng.eng")) for line in _lines(f)]
    pairs = pairs[:n]
    ours = XLMTokenizer.from_pretrained(assets / "xlm-bpe-fastbpe", release="xnli_15")
    theirs = _hf_xlm(ours)
    batches = _batches(pairs, batch_size)

    def hf_row(text, lang):
        ids = theirs.convert_tokens_to_ids(theirs._tokenize(text, lang=lang))
        return theirs.build_inputs_with_special_tokens(ids)

    def run_theirs():
        return [[hf_row(t, lg) for t, lg in b] for b in batches]

    def run_ours():
        return [ours([t for t, _ in b], lang=[lg for _, lg in b], padding=False, return_tensors=None)["input_ids"]
                for b in batches]

    same = sum(a == b for a, b in zip(run_ours(), run_theirs()))
    t_ours, t_theirs = alternate(run_ours, run_theirs, repeats)
    return (f"XLM XNLI-15, 13 languages (lang per line), batches of {batch_size}, id lists", len(pairs),
            t_ours, t_theirs, f"ids identical in {same}/{len(batches)} batches (tokens: tests)")


def machine() -> str:
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout.splitlines()[:14]
    except OSError:
        lscpu = []
    keep = [line for line in lscpu if line.split(":")[0] in ("Architecture", "CPU(s)", "Model name", "Thread(s) per core")]
    return "; ".join(" ".join(line.split()) for line in keep) or platform.processor()


def main(args) -> int:
    import tokenizers
    import transformers

    assets = args.assets or Path(__file__).resolve().parents[2] / "shared" / "assets"
    if args.sentences < 20000:
        raise SystemExit("--sentences must be >= 20000")
    rows = []
    for case in (case_xlmr, case_xlm_english, case_xlm_multilingual):
        rows.append(case(assets, args.sentences, args.repeats, args.batch_size))
        name, n, t_ours, t_theirs, note = rows[-1]
        print(f"{name}: {n} sentences | ours {n / t_ours:,.0f}/s | transformers {n / t_theirs:,.0f}/s | "
              f"ratio {t_theirs / t_ours:.2f}x | {note}")
    header = [(f"Measured {datetime.date.today().isoformat()} with `python scripts/bench.py tokenizers` "
              f"(median of {args.repeats} alternating runs after one warm-up each; transformers "
              f"{transformers.__version__}, tokenizers {tokenizers.__version__}; "
              f"{os.cpu_count()} CPUs: {machine()})."), "",
              "| case | sentences | xlmlib (sent/s) | transformers (sent/s) | ratio | output check |",
              "|---|---|---|---|---|---|"]
    body = [f"| {name} | {n} | {n / t_o:,.0f} | {n / t_t:,.0f} | {t_t / t_o:.2f}x | {note} |"
            for name, n, t_o, t_t, note in rows]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(header + body) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0
