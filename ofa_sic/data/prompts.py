"""Style prompts: `<s>` + BPE(prompt with the style) + `</s>`.

`--style-format token` puts the style's dictionary index `<code_i>` where the template says `{}`
(the id is inserted directly, never BPE of the string "<code_i>"); `--style-format text` puts the
style's words there (lowercased, as in OFA's lowercase prompts). A template without `{}` (e.g. OFA's
own caption prompt " what does the image describe?") gives every style the same source: a style-free
baseline, e.g. a released OFA caption checkpoint evaluated on Personality-Captions unchanged.
"""
import string
from typing import List

import torch

from ofa_sic.data.styles import StyleVocabulary, style_token
from ofa_sic.data.text import TextCodec

STYLE_FORMATS = ("token", "text")


def check_style_tokens(dictionary, styles: StyleVocabulary):
    """Raise unless the dictionary has a `<code_i>` symbol for every style."""
    missing = [style_token(i) for i in range(len(styles)) if dictionary.index(style_token(i)) == dictionary.unk()]
    if missing:
        raise ValueError(
            f"{len(styles)} styles need tokens up to {missing[-1]}, but the dictionary has fewer "
            "<code_i> symbols: raise --code-dict-size"
        )


def is_style_template(template: str) -> bool:
    """True for a template with one bare `{}` or no placeholder (and no other braces)."""
    try:
        fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(template) if name is not None]
    except ValueError:
        return False
    return len(fields) <= 1 and all(field == ("", "", None) for field in fields) and "{{" not in template and "}}" not in template


class StylePrompt:
    def __init__(self, template: str, style_format: str, styles: StyleVocabulary, codec: TextCodec):
        if not is_style_template(template):
            raise ValueError(
                f"--prompt-template must contain exactly one '{{}}' for the style, or no placeholder at all for "
                f"a style-free prompt, got {template!r}"
            )
        if style_format not in STYLE_FORMATS:
            raise ValueError(f"--style-format must be one of {STYLE_FORMATS}, got {style_format!r}")
        self.template = template
        self.style_format = style_format
        self.styles = styles
        self.codec = codec
        dictionary = codec.dictionary
        self.bos, self.eos = dictionary.bos(), dictionary.eos()
        self.has_style = "{}" in template
        if not self.has_style:
            self._style_free = [self.bos] + codec.encode(template) + [self.eos]
        elif style_format == "token":
            check_style_tokens(dictionary, styles)
            prefix, suffix = template.split("{}")
            self._prefix = codec.encode(prefix.rstrip(" "))
            self._suffix = codec.encode(suffix)
        self._cache = {}

    def token_ids(self, style: str) -> List[int]:
        """[<s>, prompt ids..., </s>] for `style` (any spelling the vocabulary accepts)."""
        index = self.styles.index(style)  # unknown styles are refused even by a style-free prompt
        if not self.has_style:
            return self._style_free
        if index not in self._cache:
            if self.style_format == "token":
                body = self._prefix + [self.codec.dictionary.index(style_token(index))] + self._suffix
            else:
                body = self.codec.encode(self.template.format(self.styles.names[index].lower()))
            self._cache[index] = [self.bos] + body + [self.eos]
        return self._cache[index]

    def __call__(self, style: str) -> torch.Tensor:
        return torch.tensor(self.token_ids(style), dtype=torch.long)
