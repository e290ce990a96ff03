"""`ofa-sic convert`: turn an OFA checkpoint of one format into another (fairseq, ModelScope, the HF port).

--to fairseq writes a folder with checkpoint.pt, bpe/ and styles.txt; --to modelscope / hf a model folder
(config.json, pytorch_model.bin, vocab.json, merges.txt, styles.txt; ModelScope adds configuration.json, whose
model.prompt is the prompt template).
Every key and shape is checked before anything is written; a model the target cannot express exactly
is refused with the reason. OUT must not exist yet.
"""
import argparse

from ofa_sic.convert.converter import FORMATS

HELP = "convert OFA checkpoints between fairseq, ModelScope and the Hugging Face OFA port"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="source_format", required=True, choices=FORMATS, help="format of SRC")
    parser.add_argument("--to", dest="target_format", required=True, choices=FORMATS, help="format to write")
    parser.add_argument("src", metavar="SRC", help="fairseq checkpoint (.pt), or a ModelScope / HF model folder or its pytorch_model.bin")
    parser.add_argument("out", metavar="OUT", help="new folder to write")
    parser.add_argument("--styles", metavar="FILE",
                        help="style names, one per line, style i = <code_i> (a styles.txt or PCap's personalities.txt); "
                             "default: the styles.txt that comes with SRC")
    parser.add_argument("--bpe-dir", metavar="DIR",
                        help="with --from fairseq: the BPE folder (encoder.json, vocab.bpe, dict.txt) instead of the one stored in SRC")
    parser.add_argument("--prompt-template", metavar="T",
                        help="with --from modelscope|hf: the prompt template the model was trained with, {} for the style "
                             "(e.g. the ModelScope prototype's \" what does the image describe? reply in personality {}.\"); "
                             "default: configuration.json's model.prompt, else the one in config.json's ofa_sic_task, "
                             "else ofa_sic's default (warned)")


def run(args: argparse.Namespace) -> int:
    from ofa_sic.convert.converter import convert

    report = convert(args.source_format, args.target_format, args.src, args.out, args.styles, args.bpe_dir,
                     args.prompt_template)
    for line in report.lines():
        print(line)
    print(f"wrote {args.out}")
    return 0
