"""Controlled-vocabulary (thesaurus, MeSH-style) indexing: matching, scoring, pairs, cut-off, evaluation."""
