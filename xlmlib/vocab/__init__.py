"""Vocabulary surgery on SentencePiece models: protobuf edits (spm.py), extension with new pieces (extend.py)
and the rows of the new pieces (fvt.py). Trimming is xlmlib/trim.py, which writes its models through spm.py.

Nothing is imported here, so that the tokenizers can use spm.py without loading the checkpoint code."""
