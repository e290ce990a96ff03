"""Data handling for ofa_sic: the style vocabulary, the Personality-Captions converter and the demo data set.

Modules here depend only on the standard library, numpy, Pillow, tokenizers and tqdm, so data can be
prepared on a machine without torch or fairseq.
"""
