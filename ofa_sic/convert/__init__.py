"""Checkpoint formats in and out: fairseq OFA (ofa_sic, OFA-main), ModelScope, the Hugging Face OFA port.

`convert(source_format, target_format, src, out, styles_file=None, bpe_dir=None, prompt_template=None)`
reads `src` into ofa_sic's names (`keys`), checks every key and shape against the real ofa_sic model of the source's
options (`model`), refuses what the target cannot express exactly (`config`, `vocab`), and writes `out`
(`fairseq_side`, `port_side`). The `ofa-sic convert` subcommand is a thin wrapper around it.
"""
from ofa_sic.convert.converter import FORMATS, convert  # noqa: F401
from ofa_sic.convert.report import ConversionRefused, Report  # noqa: F401
