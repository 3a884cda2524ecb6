"""Extractive question answering: the QA heads (heads.py)."""
