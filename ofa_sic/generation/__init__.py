"""Sequence generation with OFA's semantics on top of fairseq's SequenceGenerator."""
from ofa_sic.generation.generator import OFASequenceGenerator, parse_constraint_range  # noqa: F401
