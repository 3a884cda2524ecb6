"""`xlmlib` command line. Each verb is a (help, configure, run) entry of VERBS, its code in the module of its
kind (models.py: a model used as it is; training.py; mt/cli.py: translation; qa/cli.py: answering;
evaluation/cli.py: evaluate, classify, tag, mine); errors print one line and exit 1
(the traceback only with --debug). main(argv) runs a command in this process as the `xlmlib` command does."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys

from ..evaluation import cli as eval_cli
from ..mt import cli as mt_cli
from ..qa import cli as qa_cli
from ..vocab import cli as vocab_cli
from . import models, training

logger = logging.getLogger("xlmlib.cli")

# verb -> (help with an example, configure(parser), run(args) -> exit code)
VERBS = {
    "info": ("show a checkpoint's architecture, size, languages and format\n  example: xlmlib info ./xlmr-base",
             models.configure_info, models.run_info),
    "fill-mask": (("rank candidates for every mask in a text\n"
                  "  example: xlmlib fill-mask --model ./xlmr-base \"Paris is the <mask> of France.\""),
                  models.configure_fill_mask, models.run_fill_mask),
    "embed": (("write one sentence vector per input line to a .npy file\n"
              "  example: xlmlib embed --model ./xlmr-base --input sents.txt --output vectors.npy"),
              models.configure_embed, models.run_embed),
    "generate": (("continue a prompt with a causal LM (KV cache; greedy, sampling or beam search)\n"
                 "  example: xlmlib generate --model ./xlm-clm-enfr-1024 --lang en \"The weather is\""),
                 models.configure_generate, models.run_generate),
    "convert": (("convert a checkpoint (fairseq, original XLM, HF, xlmlib) to safetensors, then verify it\n"
                 "  example: xlmlib convert xlmr.large/model.pt ./xlmr-large --to hf --dtype bfloat16"),
                models.configure_convert, models.run_convert),
    "trim-vocab": (("keep only the vocabulary a corpus uses (token table, tied LM projection and bias sliced)\n"
                    "  example: xlmlib trim-vocab ./xlmr-base ./xlmr-base-de --corpus de.txt --max-pieces 30000"),
                   models.configure_trim, models.run_trim),
    "extend-vocab": (vocab_cli.HELP, vocab_cli.configure_extend_vocab, vocab_cli.run_extend_vocab),
    "preprocess": (("tokenize text files once into the binarized memory-mapped format\n"
                   "  example: xlmlib preprocess --tokenizer ./xlmr-base --out data/ en.txt fr.txt"),
                   training.configure_preprocess, training.run_preprocess),
    "pretrain": (("pretrain with MLM, CLM or TLM (runs under torchrun for DDP/FSDP)\n"
                 "  example: xlmlib pretrain --model xlmlib-mini --objective mlm --train data/en.txt data/fr.txt "
                 "--langs en,fr --steps 1000 --batch-size 32 --seq-len 256 --lr 1e-4 --out runs/mlm\n"
                 "  --model's weights are loaded; --init random starts a new model of its architecture instead"),
                 training.configure_pretrain, training.run_pretrain),
    "finetune": (("fine-tune a sequence or token classifier and report per-language accuracy\n"
                 "  example: xlmlib finetune --config configs/tasks/xnli.toml --model xlmlib-mini "
                 "--train train.tsv --dev dev.tsv --out runs/xnli\n"
                 "  --model's weights are loaded; --init random starts a new model of its architecture instead"),
                 training.configure_finetune, training.run_finetune),
    "translate": (("translate lines with an XLM encoder-decoder (greedy or beam search, as the original)\n"
                   "  example: xlmlib translate --model ./mt-deen --src de --tgt en --beam 5 < in.de > out.en"),
                  mt_cli.configure_translate, mt_cli.run_translate),
    "classify": (("label texts (or text pairs) with a fine-tuned sequence classifier, by its saved label names\n"
                  "  example: xlmlib classify --model runs/xnli/best --pair \"Ein Tier ruht.\" \"Der Hund schläft.\""),
                 eval_cli.configure_classify, eval_cli.run_classify),
    "tag": (("label every word of a text with a fine-tuned token classifier, and list the entities found\n"
             "  example: xlmlib tag --model runs/ner/best \"Tom wohnt in Paris.\""),
            eval_cli.configure_tag, eval_cli.run_tag),
    "evaluate": (("score a fine-tuned model on one test file per language, with the task's metric and the mean\n"
                  "  example: xlmlib evaluate runs/xnli/best --task sequence --test de=test.de.tsv fr=test.fr.tsv "
                  "--out results.json"),
                 eval_cli.configure_evaluate, eval_cli.run_evaluate),
    "mine": (("find each source sentence's best translation among target sentences (margin scoring, exact k-NN)\n"
              "  example: xlmlib mine --model xlmlib-mini --src sents.de --tgt sents.en --threshold 1.05 "
              "--output pairs.tsv"),
             eval_cli.configure_mine, eval_cli.run_mine),
    "answer": (("answer questions from a context with a QA model (the question-answering pipeline's rules)\n"
                "  example: xlmlib answer --model ./xlmr-squad --question \"Who wrote it?\" --context \"...\"\n"
                "  --input dev.json (SQuAD format) answers every question by run_qa's rules and prints EM / F1"),
               qa_cli.configure_answer, qa_cli.run_answer),
    "train-mt": (("train translation: supervised (mt), denoising (ae), back-translation (bt); BLEU on --valid\n"
                  "  example: xlmlib train-mt --model xlmlib-mini --langs de,en --parallel train.de train.en "
                  "--mt-steps de-en --valid valid.de valid.en --steps 2000 --out runs/mt\n"
                  "  --model's weights are loaded; --init random starts a new model of its architecture instead"),
                 mt_cli.configure_train_mt, mt_cli.run_train_mt),
}


TRAINING_VERBS = ("pretrain", "finetune", "train-mt")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xlmlib", description="XLM and XLM-R in plain PyTorch")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging (default: off)")
    sub = parser.add_subparsers(dest="verb", required=True)
    for name, (help_text, configure, run) in VERBS.items():
        p = sub.add_parser(name, help=help_text.splitlines()[0], description=help_text,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        configure(p)
        p.set_defaults(_run=run)
    return parser


def _interrupted(err, argv: list[str]) -> str:
    """What Ctrl-C tells the user: where the state is, and the command that continues the run."""
    import shlex

    from ..train.trainer import TrainingInterrupted

    if not isinstance(err, TrainingInterrupted):
        return "xlmlib: interrupted"
    again = "xlmlib " + shlex.join([a for a in argv if a != "--resume"] + ["--resume"])
    if err.checkpoint is not None:
        return f"xlmlib: interrupted at step {err.step}; saved {err.checkpoint}\ncontinue with: {again}"
    if err.last is not None:
        return f"xlmlib: interrupted at step {err.step}; the last checkpoint is {err.last}\ncontinue with: {again}"
    return f"xlmlib: interrupted at step {err.step}; no checkpoint was written yet"


@contextlib.contextmanager
def _logging(verb: str, debug: bool):
    """xlmlib's log lines on this call's stderr while the verb runs (as `LEVEL message`), at WARNING, INFO for
    the training verbs (what they read, where they write), DEBUG with --debug; undone afterwards, so that
    main() called from Python (or a test) leaves the process's logging as it found it."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    level = logging.DEBUG if debug else logging.INFO if verb in TRAINING_VERBS else logging.WARNING
    root = logging.getLogger("xlmlib")
    before = root.level
    root.addHandler(handler)
    root.setLevel(level)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(before)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    with _logging(args.verb, args.debug):
        try:
            return args._run(args)
        except KeyboardInterrupt as err:
            print(_interrupted(err, [str(a) for a in argv]), file=sys.stderr)
            return 130
        except Exception as err:  # one clear line for users; --debug shows the traceback
            if args.debug:
                raise
            print(f"xlmlib {args.verb}: error: {err}", file=sys.stderr)
            return 1


