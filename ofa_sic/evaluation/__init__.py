"""Evaluation reports people can read: metrics.json (overall and per style) and gallery.html (`ofa-sic evaluate`)."""
