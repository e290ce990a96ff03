"""Data handling for ofa_sic: the TSV reader, style vocabulary, text and image transforms, the
datasets of the style_caption task, whole-word masking, the Personality-Captions converter and the demo
data set. Importing the package imports none of them.
"""
