"""OFA-main's generation semantics (docs/ofa-spec.md §8) as a small subclass of fairseq's generator.

What differs from stock fairseq:
- decoding starts from `<s>` (OFA's decoder was trained with `prev_output_tokens = <s> + caption`);
- `generate(models, sample)` decodes with the `models` it is given (SCST passes the training model);
- `constraint_range="start,end"` sets the logits of ids in [4, start) and [end, V) to -inf *before*
  the log-softmax, so scores are normalised over the allowed (text) ids only;
- `no_repeat_ngram_size` uses a blocker that works on CPU as well as GPU.
Search (beam, sampling with top-k/top-p, temperature), length limits, length penalty and the
returned hypotheses (all beams, best first, with `tokens`, `score`, `positional_scores`) are
fairseq's own.
"""
import math
from typing import Dict, List, Optional, Tuple, Union

import torch
from fairseq.sequence_generator import EnsembleModel, SequenceGenerator
from torch import Tensor

from ofa_sic.data.text import NUM_SPECIAL_SYMBOLS
from ofa_sic.generation.ngram_block import NGramRepeatBlocker


def parse_constraint_range(value: Union[None, str, Tuple[int, int]]) -> Optional[Tuple[int, int]]:
    """"start,end" (OFA's spelling) or (start, end) -> (start, end), checked; None or "" -> None."""
    if value is None or value == "":
        return None
    try:
        start, end = (int(part) for part in (value.split(",") if isinstance(value, str) else value))
    except ValueError:
        raise ValueError(f'constraint_range must look like "start,end" (e.g. "4,50265"), got {value!r}') from None
    if not NUM_SPECIAL_SYMBOLS <= start < end:
        raise ValueError(f"constraint_range {value!r} must satisfy {NUM_SPECIAL_SYMBOLS} <= start < end")
    return start, end


def mask_outside_range(logits: Tensor, constraint_range: Optional[Tuple[int, int]]) -> Tensor:
    """Set logits [..., V] of ids in [4, start) and [end, V) to -inf, in place; returns logits."""
    if constraint_range is not None:
        start, end = constraint_range
        logits[..., NUM_SPECIAL_SYMBOLS:start] = float("-inf")
        logits[..., end:] = float("-inf")
    return logits


class ConstrainedEnsembleModel(EnsembleModel):
    """fairseq's EnsembleModel whose next-token log-probs honour a text-only constraint range."""

    def __init__(self, models, constraint_range: Optional[Tuple[int, int]]):
        super().__init__(models)
        self.constraint_range = constraint_range
        #: encoder outputs to decode from instead of encoding `net_input` (set for one generate call)
        self.given_encoder_outs: Optional[List[Dict[str, List[Tensor]]]] = None

    def forward_encoder(self, net_input: Dict[str, Tensor]):
        if self.given_encoder_outs is not None:
            return self.given_encoder_outs
        return super().forward_encoder(net_input)

    @torch.jit.export
    def forward_decoder(
        self,
        tokens: Tensor,
        encoder_outs: List[Dict[str, List[Tensor]]],
        incremental_states: List[Dict[str, Dict[str, Optional[Tensor]]]],
        temperature: float = 1.0,
    ):
        """tokens [B*beam, step+1] -> (log-probs [B*beam, V] of the next token, attention [B*beam, S] or None)."""
        log_probs = []
        avg_attn: Optional[Tensor] = None
        for i, model in enumerate(self.models):
            logits, extra = model.decoder.forward(
                tokens,
                encoder_out=encoder_outs[i] if self.has_encoder() else None,
                incremental_state=incremental_states[i] if self.has_incremental_states() else None,
            )
            attn = extra["attn"][0] if extra and extra.get("attn") else None
            if attn is not None:
                attn = attn[:, -1, :]
            last = mask_outside_range(logits[:, -1:, :].div(temperature), self.constraint_range)
            probs = model.get_normalized_probs((last, extra), log_probs=True, sample=None)[:, -1, :]
            log_probs.append(probs)
            if attn is not None:
                avg_attn = attn if avg_attn is None else avg_attn + attn
        if self.models_size == 1:
            return log_probs[0], avg_attn
        avg_probs = torch.logsumexp(torch.stack(log_probs, dim=0), dim=0) - math.log(self.models_size)
        if avg_attn is not None:
            avg_attn = avg_attn / self.models_size
        return avg_probs, avg_attn


class OFASequenceGenerator(SequenceGenerator):
    """fairseq's SequenceGenerator with OFA's start token, constraint range and a working n-gram block.

    Accepts every keyword of fairseq's SequenceGenerator plus `constraint_range` ((start, end), or OFA's
    "start,end").
    """

    def __init__(self, models, tgt_dict, constraint_range: Union[None, str, Tuple[int, int]] = None, no_repeat_ngram_size: int = 0, **kwargs):
        super().__init__(models, tgt_dict, no_repeat_ngram_size=0, **kwargs)
        self.constraint_range = parse_constraint_range(constraint_range)
        self.model = ConstrainedEnsembleModel(models, self.constraint_range)
        self.model.eval()
        self.repeat_ngram_blocker = NGramRepeatBlocker(no_repeat_ngram_size) if no_repeat_ngram_size > 0 else None
        self.bos = tgt_dict.bos()
        self.symbols_to_strip_from_output = {self.bos, self.eos}

    @torch.no_grad()
    def generate(self, models, sample: Dict[str, Dict[str, Tensor]], encoder_outs=None, **kwargs) -> List[List[Dict[str, Tensor]]]:
        """Decode `sample["net_input"]` with `models`, starting from <s>.

        encoder_outs: one encoder-out dict per model for `sample`, when the caller has them already
        (SCST reuses the encoding of its training pass); otherwise the models encode the input.
        Returns, per input row, `beam_size` hypotheses sorted by score (best first), each a dict with
        `tokens` [T] (no <s>, ending in </s>), `score` (length-normalised log-prob),
        `positional_scores` [T], `attention` and `alignment`.
        """
        current = list(self.model.models)
        if len(models) != len(current) or any(a is not b for a, b in zip(models, current)):
            self.model = ConstrainedEnsembleModel(models, self.constraint_range)
        kwargs.pop("bos_token", None)
        self.model.given_encoder_outs = encoder_outs
        try:
            return self._generate(sample, bos_token=self.bos, **kwargs)
        finally:
            self.model.given_encoder_outs = None
