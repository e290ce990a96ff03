"""One encoding standing for several decoder rows.

With `rows_per_source` r, decoder rows r*i .. r*i + r-1 use encoder row i. SCST's K samples and beam
search's hypotheses of an image thus share one encoding instead of K copies. The encoder
(`reorder_encoder_out`), the decoder (its incremental state) and the model (`forward`) all keep
this grouping through the two functions below.
"""
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor


def expand_encoder_out(encoder_out: Dict[str, List[Tensor]], rows_per_source: int) -> Dict[str, List[Tensor]]:
    """The same encoding standing for `rows_per_source` consecutive decoder rows per row (no copy)."""
    return dict(encoder_out, rows_per_source=encoder_out["rows_per_source"] * rows_per_source)


def group_rows_by_source(new_order: Tensor, rows_per_source: int, num_sources: int) -> Tuple[Optional[Tensor], int]:
    """How decoder rows `new_order` [B'] map onto the `num_sources` source rows, old row i using source i // r.

    Returns (sources, r'): new decoder row j uses source sources[j // r']. `sources` is None when
    it would be the identity (all sources kept, in order), so that nothing needs copying.
    """
    source_of_row = torch.div(new_order, rows_per_source, rounding_mode="floor")
    if source_of_row.numel() == 0:
        return source_of_row, 1
    sources, counts = torch.unique_consecutive(source_of_row, return_counts=True)
    if bool((counts == counts[0]).all()):
        new_rows_per_source = int(counts[0])
    else:
        sources, new_rows_per_source = source_of_row, 1
    if sources.numel() == num_sources and bool((sources == torch.arange(num_sources, device=sources.device)).all()):
        return None, new_rows_per_source
    return sources, new_rows_per_source
