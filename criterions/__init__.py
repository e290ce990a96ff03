"""fairseq criteria of ofa_sic (a top-level package, as in OFA-main); imported by `ofa_sic`."""
from criterions import label_smoothed_cross_entropy, scst_loss  # noqa: F401
