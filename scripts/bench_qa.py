"""`bench.py qa`: extractive question answering, answers per second for N questions (default 100) over long
contexts, end to end from strings: xlmlib.qa.answer vs the same rules over transformers'
XLMRobertaForQuestionAnswering + XLMRobertaTokenizer (its Rust tokenizer) on the same weights. transformers 5
no longer ships the question-answering pipeline, so its 4.x rules run from tests/qa/hf_pipeline.py (the
reference the tests compare answer() with): once with one forward per window, the pipeline's default
batch_size 1, and once with windows batched like ours. Alternating runs, medians.

Model: random weights, the XLM-R base shape (L12 H768 A12 FFN3072, vocabulary 250002) or, with --shape
small, L4 H256 A4 FFN1024 (same vocabulary), for machines where base takes minutes per run. The span head is
scaled x50 so that answers do not tie within float noise (the output check compares texts). Saved with
save_pretrained(format="hf"); both sides load that folder. Contexts: 90 Tatoeba sentences of one language
(10 languages in turn), 2-6 windows of 384 tokens with stride 128; question: another sentence of it.

    python scripts/bench_qa.py [--questions 100] [--repeats 3] [--shape base|small] [--batch-size 32]
                               [--cases batched,single] [--out bench-results/qa.md]
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
from functools import partial
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
RESULTS = HERE.parent / "bench-results"
LANGS = ["deu", "fra", "spa", "rus", "cmn", "ara", "hin", "vie", "tur", "ell"]
SHAPES = {"base": {}, "small": {"n_layers": 4, "dim": 256, "n_heads": 4, "ffn_dim": 1024}}


def questions(assets: Path, n: int) -> list[tuple[str, str]]:
    """n (question, context) pairs: 90 sentences of one language as the context, the 91st as the question."""
    pairs = []
    for k in range(n):
        code = LANGS[k % len(LANGS)]
        lines = (assets / "tatoeba-laser-v1" / f"tatoeba.{code}-eng.{code}").read_text(encoding="utf-8").split("\n")
        lines = [line.strip() for line in lines if line.strip()]
        first = (k // len(LANGS)) * 91 % max(len(lines) - 91, 1)
        pairs.append((lines[first + 90], " ".join(lines[first:first + 90])))
    return pairs


def models(shape: str, folder: Path):
    """(ours, theirs): the same random weights in xlmlib's QuestionAnswering and transformers' class."""
    import torch
    import transformers

    import xlmlib

    cfg = xlmlib.ModelConfig.from_preset("xlm-roberta-base").replace(**SHAPES[shape])
    torch.manual_seed(0)
    ours = xlmlib.QuestionAnswering(cfg)
    ours.reset_parameters()
    with torch.no_grad():
        ours.qa_outputs.weight.mul_(50)
    ours.save_pretrained(folder, format="hf")
    theirs = transformers.XLMRobertaForQuestionAnswering.from_pretrained(folder)
    return xlmlib.QuestionAnswering.from_pretrained(folder).eval(), theirs.eval(), cfg


def same_answers(ours: list[dict], theirs: list[dict]) -> bool:
    """Equal texts and ends; transformers' answers keep the space before the first word, ours do not."""
    return ours["answer"] == theirs["answer"].lstrip() and ours["end"] == theirs["end"]


def _best(run, *args, **options) -> list[dict]:
    return [found[0] for found in run(*args, **options)]


def main(args, info: dict | None = None) -> int:
    import torch
    import transformers
    from bench_model import alternate

    import xlmlib
    from tests.qa.hf_pipeline import hf_answers
    from xlmlib.qa import answer, windows

    assets = args.assets or HERE.parents[1] / "shared" / "assets"
    pairs = questions(assets, args.questions)
    qs, cs = [q for q, _ in pairs], [c for _, c in pairs]
    folder = Path(tempfile.mkdtemp(prefix="bench-qa-"))
    ours, theirs, cfg = models(args.shape, folder)
    tok = xlmlib.Tokenizer.from_pretrained(assets / "xlmr-spm-rebuilt")
    hf_tok = transformers.XLMRobertaTokenizer(tokenizer_file=str(assets / "xlmr-tokenizer-json" / "tokenizer.json"))
    n_windows = len(windows(tok, qs, cs))
    run_ours = partial(answer, ours, tok, qs, cs, batch_size=args.batch_size)
    run_single = partial(_best, hf_answers, theirs, hf_tok, qs, cs, batch_size=1)
    run_batched = partial(_best, hf_answers, theirs, hf_tok, qs, cs, batch_size=args.batch_size)
    with torch.inference_mode():
        mine = run_ours()
        same = sum(same_answers(a, b) for a, b in zip(mine, run_batched()))
        rows = []
        cases = {"batched": (f"transformers, windows batched by {args.batch_size}", run_batched),
                 "single": ("transformers, one forward per window (the pipeline's default)", run_single)}
        for name, theirs_run in (cases[c] for c in args.cases.split(",")):
            t_ours, t_theirs = alternate(run_ours, theirs_run, args.repeats)
            rows.append({"case": name, "ours": len(qs) / t_ours, "transformers": len(qs) / t_theirs,
                         "ratio": t_theirs / t_ours})
            print(f"{name}: ours {rows[-1]['ours']:.2f}/s, transformers {rows[-1]['transformers']:.2f}/s",
                  file=sys.stderr)
    shape = f"L{cfg.n_layers} H{cfg.dim} A{cfg.n_heads} FFN{cfg.ffn_dim} V{cfg.vocab_size}"
    lines = [(f"Measured {datetime.date.today().isoformat()}: {len(qs)} questions, {n_windows} windows of at most "
              f"384 tokens (stride 128), random {args.shape} weights ({shape}), fp32, {torch.get_num_threads()} "
              f"threads, transformers {transformers.__version__}, median of {args.repeats} alternating runs; "
              f"xlmlib batches {args.batch_size} windows. Answers identical (stripped) on {same}/{len(qs)}."), "",
             "| xlmlib.qa.answer | against | xlmlib (answers/s) | transformers (answers/s) | ratio |",
             "|---|---|---|---|---|"]
    lines += [f"| batched by {args.batch_size} | {r['case']} | {r['ours']:.2f} | {r['transformers']:.2f} | "
              f"{r['ratio']:.2f}x |" for r in rows]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    args.out.with_suffix(".json").write_text(json.dumps({"machine": info, "shape": shape, "questions": len(qs),
                                                         "windows": n_windows, "identical": same, "rows": rows},
                                                        indent=1) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--assets", type=Path, default=None, help="shared assets folder (default ../shared/assets)")
    parser.add_argument("--questions", type=int, default=100)
    parser.add_argument("--cases", default="batched,single",
                        help="transformers' runs to compare with: batched (windows batched like ours), single "
                             "(one forward per window)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per implementation (median reported)")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="base")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="windows per forward (xlmlib, and transformers batched)")
    parser.add_argument("--out", type=Path, default=RESULTS / "qa.md",
                        help="Markdown table; the JSON lands beside it")
    return parser


if __name__ == "__main__":
    raise SystemExit(main(add_arguments(argparse.ArgumentParser(description=__doc__)).parse_args()))
