"""Caption generation settings, spelled once: OFA's caption evaluation settings are the defaults of
validation (`--eval-args`), SCST hypotheses (`--scst-args`), `ofa-sic evaluate` and `ofa-sic caption`.

Free of torch/fairseq imports, so that building the `ofa-sic` parser stays fast.
"""
import json
from dataclasses import asdict, dataclass


@dataclass
class GenerationOptions:
    """Beam-search settings; the defaults are OFA's caption evaluation settings."""

    beam: int = 5
    max_len_a: float = 0.0
    max_len_b: int = 16
    min_len: int = 1
    no_repeat_ngram_size: int = 3
    lenpen: float = 1.0
    temperature: float = 1.0

    def as_dict(self) -> dict:
        return asdict(self)


#: The JSON form fairseq options take (`--eval-args`, `--scst-args`): OFA's scripts pass exactly these.
OFA_CAPTION_GENERATION_JSON = json.dumps(
    {key: getattr(GenerationOptions(), key) for key in ("beam", "max_len_b", "no_repeat_ngram_size")}
)
