"""ofa_sic: stylized image captioning with OFA as a fairseq `--user-dir` plugin.

Importing the package registers the model, task, criteria, scorer and LR scheduler with fairseq.
"""
import ofa_sic.models  # noqa: F401
