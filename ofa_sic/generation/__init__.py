"""Sequence generation with OFA's semantics on top of fairseq's SequenceGenerator (`generator`), its
settings (`options`, importable without torch) and captioning outside fairseq-generate (`captioner`)."""
