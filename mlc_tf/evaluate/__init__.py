"""Judging models and corpora without fitting one: metrics, operating points, scoring, reports, figures."""
