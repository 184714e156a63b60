"""Scoring and reporting: metrics, intervals, diagnostics, figures and evaluation records."""
