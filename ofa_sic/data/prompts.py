"""Prompts: `<s>` + the ids of a template with the style in its slot + `</s>`, as ModelScope tokenizes them.

One compiler (`PromptCompiler`) turns a template into ids for the caption prompt (`StylePrompt`, one
`{}` for the style) and for the MLM prompt (`MLMPrompt` in mlm_dataset.py, `{style}` and `{text}`):
- `--style-format token`: the style is its dictionary id `<code_i>`, inserted directly (never BPE of
  the string "<code_i>"). The text on either side is BPE-encoded as it is, spaces included. This is
  what the `OFATokenizer` of ModelScope and of the HF OFA port does with `template.format("<code_i>")`:
  it splits the text at the added token and encodes each side, so `" ... write a <code_1> reply."`
  becomes `... Ġa, Ġ, <code_1>, Ġreply, . ...`: the space before `<code_1>` is a token of its own.
- `--style-format text`: the style's lowercased words go into the text (as in OFA's lowercase
  prompts), which is then BPE-encoded as a whole.
- `{text}` (MLM only): the masked caption's ids go there. The text right before it loses its
  trailing spaces, because the caption's BPE starts with its own "Ġ" (OFA's `process_pure_text`).
A caption template without `{}` (e.g. OFA's own " what does the image describe?") gives every style
the same ids: a style-free baseline, e.g. a released OFA caption checkpoint on Personality-Captions.

Until ModelScope's rule was adopted, the token format dropped the spaces before the style slot. The
ids a template T had then are the ids `template_without_space_before_style(T)` has now.
"""
import string
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple, Union

import torch

from ofa_sic.data.styles import StyleVocabulary, style_token
from ofa_sic.data.text import TextCodec

STYLE_FORMATS = ("token", "text")


@dataclass(frozen=True)
class Slot:
    """A placeholder of a template: where the style or the (masked) caption goes."""

    name: str


STYLE = Slot("style")
TEXT = Slot("text")
#: A template as literal strings and slots, in order.
Pieces = List[Union[str, Slot]]
#: Placeholder name -> slot: `{}` in caption templates, `{style}` and `{text}` in MLM templates.
CAPTION_FIELDS = {"": STYLE}
MLM_FIELDS = {"style": STYLE, "text": TEXT}


def check_style_tokens(dictionary, styles: StyleVocabulary):
    """Raise unless the dictionary has a `<code_i>` symbol for every style (the one capacity check of the
    style vocabulary: the task runs it for any style format, a token-format prompt again)."""
    missing = [style_token(i) for i in range(len(styles)) if dictionary.index(style_token(i)) == dictionary.unk()]
    if missing:
        raise ValueError(
            f"{len(styles)} styles need tokens up to {missing[-1]}, but the dictionary has fewer "
            "<code_i> symbols: raise --code-dict-size"
        )


def parse_template(template: str, option: str) -> List[Tuple[str, Optional[str]]]:
    """[(literal text, name of the placeholder after it or None), ...] of `template` in str.format
    syntax (`{{` and `}}` are literal braces). ValueError naming `option` for malformed braces or a
    placeholder with a format spec or conversion."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as error:
        raise ValueError(f"{option} {template!r}: {error} (write a literal brace as {{{{ or }}}})") from None
    for _, field, spec, conversion in parsed:
        if field is not None and (spec or conversion):
            raise ValueError(f"{option} {template!r}: write the placeholder {{{field}}} without a format spec or conversion")
    return [(literal, field) for literal, field, _, _ in parsed]


def template_pieces(template: str, option: str, fields: Dict[str, Slot]) -> Pieces:
    """`template` as literal strings and slots, placeholder names mapped by `fields`; ValueError
    naming `option` for a placeholder not in `fields`."""
    pieces: Pieces = []
    for literal, field in parse_template(template, option):
        if literal:
            pieces.append(literal)
        if field is not None:
            if field not in fields:
                names = " or ".join("{" + name + "}" for name in fields)
                raise ValueError(f"{option} {template!r}: unknown placeholder {{{field}}} (expected {names})")
            pieces.append(fields[field])
    return pieces


def caption_template_pieces(template: str) -> Pieces:
    """The pieces of a caption prompt template: one bare `{}` for the style, or none (style-free); no
    other braces. ValueError saying so otherwise."""
    usage = (f"--prompt-template must contain exactly one '{{}}' for the style, or no placeholder at all for "
             f"a style-free prompt, got {template!r}")
    try:
        pieces = template_pieces(template, "--prompt-template", CAPTION_FIELDS)
    except ValueError as error:
        raise ValueError(f"{usage} ({error})") from None
    if pieces.count(STYLE) > 1 or any(isinstance(p, str) and ("{" in p or "}" in p) for p in pieces):
        raise ValueError(usage)
    return pieces


def template_without_space_before_style(template: str) -> str:
    """`template` with the spaces right before its style slot removed (`{}` of a caption template,
    `{style}` of an MLM template); other text, `{text}` and escaped braces stay as they are.

    With `--style-format token`, the ids a template T had under the old rule (the spaces before the
    style token dropped) are the ids `template_without_space_before_style(T)` has now, so a checkpoint
    trained under the old rule gets its training input back. Text-format ids did not change: do not
    rewrite text-format templates (" write a{} reply." would put the style's words against "a").
    """
    out = []
    for literal, field in parse_template(template, "template"):
        if field in ("", "style"):
            literal = literal.rstrip(" ")
        out.append(literal.replace("{", "{{").replace("}", "}}"))
        if field is not None:
            out.append("{" + field + "}")
    return "".join(out)


class PromptCompiler:
    """The ids of a template's pieces for each style, by the rule of the module docstring."""

    def __init__(self, pieces: Pieces, style_format: str, styles: StyleVocabulary, codec: TextCodec):
        if style_format not in STYLE_FORMATS:
            raise ValueError(f"--style-format must be one of {STYLE_FORMATS}, got {style_format!r}")
        self.pieces = pieces
        self.style_format = style_format
        self.styles = styles
        self.codec = codec
        if style_format == "token" and STYLE in pieces:
            check_style_tokens(codec.dictionary, styles)

    def compile(self, style_index: int) -> List[Tuple[List[int], Optional[int]]]:
        """For each stretch of the template around `{text}` (one stretch without `{text}`, two with it):
        (its ids without <s>/</s>, offset of the style's `<code_i>` id in them, or None where that id
        is not in the stretch or with --style-format text)."""
        stretches: List[Pieces] = [[]]
        for piece in self.pieces:
            if piece == TEXT:
                stretches.append([])
            elif piece == STYLE and self.style_format == "text":
                stretches[-1].append(self.styles.names[style_index].lower())
            else:
                stretches[-1].append(piece)
        code = self.codec.dictionary.index(style_token(style_index)) if self.style_format == "token" else None
        return [self._encode(stretch, code, before_text=number + 1 < len(stretches))
                for number, stretch in enumerate(stretches)]

    def _encode(self, stretch: Pieces, code: Optional[int], before_text: bool) -> Tuple[List[int], Optional[int]]:
        runs: Pieces = []  # adjacent strings joined: BPE sees the text as the tokenizer does, whole
        for piece in stretch:
            if isinstance(piece, str) and runs and isinstance(runs[-1], str):
                runs[-1] += piece
            else:
                runs.append(piece)
        if before_text and runs and isinstance(runs[-1], str):
            runs[-1] = runs[-1].rstrip(" ")  # the caption's BPE brings its own leading space
        ids: List[int] = []
        offset = None
        for run in runs:
            if run == STYLE:
                offset = len(ids)
                ids.append(code)
            else:
                ids.extend(self.codec.encode(run))
        return ids, offset


class StylePrompt:
    """The caption source `[<s>, template ids with the style, </s>]` of each style."""

    def __init__(self, template: str, style_format: str, styles: StyleVocabulary, codec: TextCodec):
        self.template = template
        self.style_format = style_format
        self.styles = styles
        self.codec = codec
        pieces = caption_template_pieces(template)
        self.has_style = STYLE in pieces
        self.compiler = PromptCompiler(pieces, style_format, styles, codec)
        self.bos, self.eos = codec.dictionary.bos(), codec.dictionary.eos()
        self._cache: Dict[int, List[int]] = {}

    def token_ids(self, style: str) -> List[int]:
        """[<s>, prompt ids..., </s>] for `style` (any spelling the vocabulary accepts)."""
        index = self.styles.index(style)  # unknown styles are refused even by a style-free prompt
        if index not in self._cache:
            [(body, _)] = self.compiler.compile(index)
            self._cache[index] = [self.bos] + body + [self.eos]
        return self._cache[index]

    def __call__(self, style: str) -> torch.Tensor:
        return torch.tensor(self.token_ids(style), dtype=torch.long)
