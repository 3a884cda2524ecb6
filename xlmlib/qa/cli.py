"""The `xlmlib answer` verb (registered in cli.VERBS): one question and context from the command line, a JSON
list of them, or a SQuAD file answered by run_qa's rules with EM / F1."""

from __future__ import annotations

import argparse


def configure_answer(p: argparse.ArgumentParser) -> None:
    from ..cli.models import model_args  # here: the cli package imports this module for its VERBS

    model_args(p)
    p.add_argument("--question", default=None, help="the question, with --context (default: none, --input)")
    p.add_argument("--context", default=None, help="the text that holds the answer, with --question (default: none, --input)")
    p.add_argument("--input", default=None,
                   help="a JSON file instead: SQuAD format (every question answered by run_qa's rules, EM/F1 "
                        "printed when it has answers) or a list of {\"question\", \"context\"} objects "
                        "(default: none)")
    p.add_argument("--output", default=None,
                   help="with a SQuAD --input: write the predictions {id: answer} here (default: none)")
    p.add_argument("--top-k", type=int, default=1, help="answers per question (default: 1)")
    p.add_argument("--max-len", type=int, default=384, help="tokens per window (default: 384)")
    p.add_argument("--doc-stride", type=int, default=128, help="tokens shared by consecutive windows (default: 128)")
    p.add_argument("--max-answer-len", type=int, default=None,
                   help="longest answer in tokens (default: 15; 30 for a SQuAD --input, as run_qa)")
    p.add_argument("--handle-impossible", action="store_true",
                   help="allow the empty answer (SQuAD v2 models; with a SQuAD --input: v2 rules) (default: off)")
    p.add_argument("--null-threshold", type=float, default=0.0,
                   help="SQuAD --input with --handle-impossible: answer \"\" when the null score beats the best "
                        "span by more than this (default: 0.0)")
    p.add_argument("--batch-size", type=int, default=32, help="windows per forward pass (default: 32)")


def run_answer(args) -> int:
    import json

    from ..cli.models import load_for
    from .answer import answer

    if (args.question is None) != (args.context is None) or (args.input is None) == (args.question is None):
        raise ValueError("give --question and --context, or --input FILE")
    model, tok = load_for(args, "question-answering")
    if args.input is not None:
        with open(args.input, encoding="utf-8") as fh:
            try:
                data = json.load(fh)
            except json.JSONDecodeError as err:
                raise ValueError(f"{args.input}: invalid JSON ({err.msg}, line {err.lineno})") from None
        if isinstance(data, dict):
            return _answer_squad(args, model, tok, data)
        questions, contexts = _question_list(data, args.input)
    else:
        questions, contexts = [args.question], [args.context]
    found = answer(model, tok, questions, contexts, lang=_model_lang(model, args.lang), top_k=args.top_k,
                   max_len=args.max_len, doc_stride=args.doc_stride, max_answer_len=args.max_answer_len or 15,
                   handle_impossible=args.handle_impossible, batch_size=args.batch_size)
    for k, result in enumerate(found):
        if len(found) > 1:
            print(f"question {k + 1}:")
        for a in result if isinstance(result, list) else [result]:
            print(f"  {a['score']:.4f}  {a['start']}-{a['end']}  {a['answer']}")
    return 0


def _model_lang(model, lang):
    """--lang goes to the model only where it has a language input (XLM); XLM-R has none, and for a SQuAD
    --input --lang also names the metric's language."""
    return lang if model.config.head_style == "xlm" else None


def _question_list(data, path) -> tuple[list[str], list[str]]:
    if not isinstance(data, list) or not all(isinstance(d, dict) and {"question", "context"} <= set(d) for d in data):
        raise ValueError(f"{path}: expected SQuAD format or a list of {{\"question\", \"context\"}} objects")
    return [d["question"] for d in data], [d["context"] for d in data]


def _answer_squad(args, model, tok, data) -> int:
    from .answer import predict
    from .metrics import qa_metrics
    from .squad import parse_squad, references, write_predictions

    examples, report = parse_squad(data, source=args.input)
    predictions = predict(model, tok, examples, lang=_model_lang(model, args.lang), max_len=args.max_len,
                          doc_stride=args.doc_stride, max_answer_len=args.max_answer_len or 30,
                          version_2=args.handle_impossible, null_threshold=args.null_threshold,
                          batch_size=args.batch_size)
    if args.output:
        write_predictions(args.output, predictions)
        print(f"wrote {len(predictions)} predictions to {args.output}")
    scores = qa_metrics(predictions, references(examples), lang=args.lang)
    print(f"{report.n_questions} questions: exact match {scores['exact_match']:.2f}, F1 {scores['f1']:.2f}")
    return 0
