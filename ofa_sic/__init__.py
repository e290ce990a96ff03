"""ofa_sic: stylized image captioning with OFA as a fairseq `--user-dir` plugin.

Importing the package registers with fairseq: the `ofa` model and its archs, the `style_caption`
task, the `ofa_polynomial_decay` LR scheduler and (from the top-level `criterions` package) the
criteria.
"""
import ofa_sic.checkpoints  # noqa: F401  (safe checkpoint loading under torch >= 2.6)
import ofa_sic.crash_safe_training  # noqa: F401  (atomic checkpoint saves, checks on resume)
import ofa_sic.lr_scheduler  # noqa: F401
import ofa_sic.models  # noqa: F401
import ofa_sic.tasks  # noqa: F401
import criterions  # noqa: F401
import ofa_sic.metrics.scorer  # noqa: F401  (fairseq-generate --scoring coco_caption)
