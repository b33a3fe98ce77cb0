"""Baselines esrank is compared with: BART-KP One2Seq keyphrase generation (``esrank.baselines.bart``)."""
