"""Evaluation reports people can read: metrics.json (overall and per style), gallery.html, style figures and
training curves (`ofa-sic evaluate`, `score-generate`, `plot`)."""
