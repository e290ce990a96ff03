"""Style prompts: `<s>` + BPE(prompt with the style) + `</s>`.

`--style-format token` puts the style's dictionary index `<code_i>` where the template says `{}`
(the id is inserted directly, never BPE of the string "<code_i>"); `--style-format text` puts the
style's words there (lowercased, as in OFA's lowercase prompts).
"""
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


class StylePrompt:
    def __init__(self, template: str, style_format: str, styles: StyleVocabulary, codec: TextCodec):
        if template.count("{}") != 1:
            raise ValueError(f"--prompt-template must contain exactly one '{{}}' for the style, got {template!r}")
        if style_format not in STYLE_FORMATS:
            raise ValueError(f"--style-format must be one of {STYLE_FORMATS}, got {style_format!r}")
        self.template = template
        self.style_format = style_format
        self.styles = styles
        self.codec = codec
        dictionary = codec.dictionary
        self.bos, self.eos = dictionary.bos(), dictionary.eos()
        if style_format == "token":
            check_style_tokens(dictionary, styles)
            prefix, suffix = template.split("{}")
            self._prefix = codec.encode(prefix.rstrip(" "))
            self._suffix = codec.encode(suffix)
        self._cache = {}

    def token_ids(self, style: str) -> List[int]:
        """[<s>, prompt ids..., </s>] for `style` (any spelling the vocabulary accepts)."""
        index = self.styles.index(style)
        if index not in self._cache:
            if self.style_format == "token":
                body = self._prefix + [self.codec.dictionary.index(style_token(index))] + self._suffix
            else:
                body = self.codec.encode(self.template.format(self.styles.names[index].lower()))
            self._cache[index] = [self.bos] + body + [self.eos]
        return self._cache[index]

    def __call__(self, style: str) -> torch.Tensor:
        return torch.tensor(self.token_ids(style), dtype=torch.long)
