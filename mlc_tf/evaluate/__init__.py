"""Judging models and corpora: metrics, reports and figures, exploration, suspects, cross-validation, growing."""
