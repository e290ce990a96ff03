"""The SCST reward configuration as a SacreEOS signature (Hu et al. 2023, package `sacreeos`), so that a
reported stage-2 gain can be compared with other papers': which SCST mode (is the end-of-sequence token
part of the reward text and of the document frequencies), the metric and its settings, whether the
document frequencies come from the training corpus, the baseline and the samples per image.

The signature is made by SacreEOS itself (its `Scst` class), from this run's settings; SacreEOS also
checks, on a reference wrapped the way the reward wraps text, that the end-of-sequence token is where its
STANDARD mode requires it.
"""
from typing import Optional

from ofa_sic.metrics.document_frequency import EOS_SUFFIX

#: SacreEOS's name of each --scst-baseline it can express: leave-one-out is its "average" base (the mean of
#: the other samples of the image); "mean" (the mean including the hypothesis itself) has no SacreEOS form.
SACREEOS_BASES = {"loo": "BASE_AVERAGE", "greedy": "BASE_GREEDY"}


def sacreeos_signature(baseline: str, samples_per_image: int, n: int, sigma: float, wrapped_reference: str) -> Optional[str]:
    """The SacreEOS signature of SCST with CIDEr-D (`n`, `sigma`) on cached training-corpus document
    frequencies, `baseline` over `samples_per_image` hypotheses, and EOS_SUFFIX ending the reward text.
    `wrapped_reference`: a reference as the reward sees it, on which SacreEOS checks that. None for a
    baseline SacreEOS cannot express."""
    import contextlib
    import io

    from sacreeos.scst import Scst

    if baseline not in SACREEOS_BASES:
        return None
    with contextlib.redirect_stdout(io.StringIO()):  # SacreEOS prints notes even with verbose=False
        scst = Scst(Scst.SCST_CONFIG_STANDARD, Scst.METRIC_CIDER_D, getattr(Scst, SACREEOS_BASES[baseline]),
                    eos_token=EOS_SUFFIX.strip(), corpus_refss=[[wrapped_reference]], verbose=False,
                    metric_args={"n": n, "sigma": sigma}, base_args={"nspi": samples_per_image})
    return scst.get_signature()
