"""Extractive question answering: the QA heads (heads), SQuAD-format data (squad), windows over long contexts
(windows), span decoding by the pipeline's, run_qa's and run_qa_beam_search's rules (decode), EM / F1
(metrics), the answer / predict calls (answer), fine-tuning (train) and the `xlmlib answer` verb (cli)."""

from .answer import answer, predict
from .decode import beam_answer, pipeline_answers, run_qa_answer
from .heads import QuestionAnswering, QuestionAnsweringBeam
from .metrics import MLQA_LANGS, normalize_answer, qa_metrics
from .squad import (
    QAExample,
    ReadReport,
    SquadFormatError,
    examples_from_records,
    parse_squad,
    read_squad,
    references,
    write_predictions,
)
from .windows import Window, collate, example_windows, window_starts, windows

__all__ = ["MLQA_LANGS", "QAExample", "QuestionAnswering", "QuestionAnsweringBeam", "ReadReport", "SquadFormatError", "Window", "answer", "beam_answer",
           "collate", "example_windows", "examples_from_records", "normalize_answer", "parse_squad",
           "pipeline_answers", "predict", "qa_metrics", "read_squad", "references", "run_qa_answer",
           "window_starts", "windows", "write_predictions"]
