"""OFA model: importing this registers the `ofa` model and its architectures with fairseq."""
from ofa_sic.models import ofa  # noqa: F401
