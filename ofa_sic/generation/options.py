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


#: The keys of a JSON generation option (`--eval-args`, `--scst-args`): the settings fairseq's
#: `FairseqTask.build_generator` reads. Any other key would be ignored by fairseq, so it is refused.
GENERATOR_KEYS = frozenset({
    "beam", "max_len_a", "max_len_b", "min_len", "no_repeat_ngram_size", "lenpen", "unkpen", "temperature",
    "unnormalized", "match_source_len", "sampling", "sampling_topk", "sampling_topp",
    "diverse_beam_groups", "diverse_beam_strength", "diversity_rate",
})


def parse_generation_json(text: str, option: str) -> dict:
    """The generation settings of a JSON option such as `--scst-args`, checked: an object whose keys are
    all in GENERATOR_KEYS. Raises ValueError naming `option` and the problem."""
    try:
        options = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{option} is not valid JSON ({error}): {text!r}") from None
    if not isinstance(options, dict):
        raise ValueError(f"{option} must be a JSON object such as {OFA_CAPTION_GENERATION_JSON}, got {text!r}")
    unknown = sorted(set(options) - GENERATOR_KEYS)
    if unknown:
        raise ValueError(f"{option} has unknown generation settings {unknown}; "
                         f"known: {', '.join(sorted(GENERATOR_KEYS))}")
    beam = options.get("beam", 5)
    if not isinstance(beam, int) or beam < 1:
        raise ValueError(f"{option}: beam must be a whole number >= 1, got {beam!r}")
    return options
