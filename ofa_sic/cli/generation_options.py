"""Beam-search options of `ofa-sic evaluate` and `ofa-sic caption` (kept free of torch/fairseq imports,
so that building the `ofa-sic` parser stays fast)."""
import argparse

from ofa_sic.generation.options import GenerationOptions


def add_generation_arguments(parser: argparse.ArgumentParser, batch_size: bool = True) -> None:
    """Checkpoint, folders, device and beam-search options shared by `ofa-sic evaluate`, `caption` and `serve`
    (with `batch_size`, also --batch-size; `serve` sizes its batches with its own options)."""
    defaults = GenerationOptions()
    add = parser.add_argument
    add("--path", required=True, metavar="CKPT", help="style_caption checkpoint (e.g. checkpoint_best.pt)")
    add("--data", metavar="DIR",
        help="prepared data folder (styles.txt, split TSVs); default: the one stored in the checkpoint")
    add("--bpe-dir", metavar="DIR",
        help="folder with encoder.json, vocab.bpe, dict.txt; default: the one stored in the checkpoint")
    add("--beam", type=int, default=defaults.beam, metavar="N", help=f"beam size (default: {defaults.beam})")
    add("--max-len-a", type=float, default=defaults.max_len_a, metavar="A", help="see --max-len-b (default: 0)")
    add("--max-len-b", type=int, default=defaults.max_len_b, metavar="B",
        help=f"captions have at most A*prompt_length+B tokens (default: {defaults.max_len_b})")
    add("--min-len", type=int, default=defaults.min_len, metavar="N",
        help=f"shortest caption in tokens (default: {defaults.min_len})")
    add("--no-repeat-ngram-size", type=int, default=defaults.no_repeat_ngram_size, metavar="N",
        help=f"never repeat an n-gram of this size; 0 to allow (default: {defaults.no_repeat_ngram_size})")
    add("--lenpen", type=float, default=defaults.lenpen, metavar="X",
        help="length penalty: >1 favours longer captions (default: 1)")
    add("--temperature", type=float, default=defaults.temperature, metavar="T", help="divide the logits by T (default: 1)")
    if batch_size:
        add("--batch-size", type=int, default=16, metavar="N", help="captions generated at once (default: 16)")
    add("--cpu", action="store_true", help="run on the CPU even when a GPU is available")
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument("--fp16", dest="precision", action="store_const", const="fp16",
                           help="generate with the model in float16 (GPU)")
    precision.add_argument("--bf16", dest="precision", action="store_const", const="bf16",
                           help="generate with the model in bfloat16 (GPU, or a CPU with bf16 instructions)")
    parser.set_defaults(precision="fp32")


def options_from_args(args: argparse.Namespace) -> GenerationOptions:
    """GenerationOptions from parsed `add_generation_arguments` options (checked)."""
    options = GenerationOptions(
        beam=args.beam, max_len_a=args.max_len_a, max_len_b=args.max_len_b, min_len=args.min_len,
        no_repeat_ngram_size=args.no_repeat_ngram_size, lenpen=args.lenpen, temperature=args.temperature,
    )
    if options.beam < 1:
        raise ValueError(f"--beam must be at least 1, got {options.beam}")
    if "batch_size" in vars(args) and args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    if options.temperature <= 0:
        raise ValueError(f"--temperature must be positive, got {options.temperature}")
    return options
