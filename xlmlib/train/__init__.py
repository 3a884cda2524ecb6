"""Training: corpora (data.py); the trainer and fine-tuning live beside it."""
