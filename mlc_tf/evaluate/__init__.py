"""Judging models and corpora without fitting: metrics, operating points, scoring, reports."""
