"""One conversion: read the source format, write the target format, report what was done."""
from typing import Optional

from ofa_sic.convert import fairseq_side, port_side
from ofa_sic.convert.report import ConversionRefused, Report

FORMATS = ("fairseq", "modelscope", "hf")


def read_styles(path: str):
    """Style names in `<code_i>` order from `path`: one per line (a styles.txt, or PCap's personalities.txt,
    whose blank lines and "... Traits" header lines are skipped)."""
    from ofa_sic.data.styles import StyleVocabulary, read_personalities

    return StyleVocabulary(read_personalities(path)).names


def convert(source_format: str, target_format: str, src: str, out: str, styles_file: Optional[str] = None,
            bpe_dir: Optional[str] = None, prompt_template: Optional[str] = None) -> Report:
    """Convert `src` (in `source_format`) to a new folder `out` (in `target_format`); return the report.

    `styles_file` gives the style names (style i = `<code_i>`); `bpe_dir` replaces a fairseq
    checkpoint's stored BPE folder; `prompt_template` is the template a ModelScope / HF model was trained
    with (default: the one its folder declares). Raises ConversionRefused when the target cannot hold the
    model exactly.
    """
    for name, fmt in (("--from", source_format), ("--to", target_format)):
        if fmt not in FORMATS:
            raise ValueError(f"{name} {fmt!r}: expected one of {', '.join(FORMATS)}")
    if source_format == target_format:
        raise ValueError(f"--from and --to are both {source_format}; nothing to convert")
    if bpe_dir is not None and source_format != "fairseq":
        raise ValueError("--bpe-dir applies to --from fairseq only (the ports' folders carry vocab.json and merges.txt)")
    if prompt_template is not None and source_format == "fairseq":
        raise ValueError("--prompt-template applies to --from modelscope|hf only (a fairseq checkpoint stores the "
                         "template it was trained with)")
    report = Report()
    styles = None
    if styles_file is not None:
        styles = read_styles(styles_file)
        report.note(f"styles: {len(styles)} from {styles_file} (<code_0> = {styles[0]!r})")
    if source_format == "fairseq":
        model = fairseq_side.read_checkpoint(src, bpe_dir, styles, report)
    else:
        model = port_side.read_folder(src, source_format, styles, prompt_template, report)
    if model.styles is not None and len(model.styles) > model.vocabulary.num_codes:
        raise ConversionRefused(f"{len(model.styles)} styles but only {model.vocabulary.num_codes} <code_i> symbols")
    if target_format == "fairseq":
        fairseq_side.write_checkpoint(model, out, report)
    else:
        port_side.write_folder(model, out, target_format, report)
    return report
