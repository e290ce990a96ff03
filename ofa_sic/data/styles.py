"""The style vocabulary: Personality-Captions traits and their `<code_i>` tokens.

Two files hold style names:

- PCap's `personalities.txt` lists the 215 traits, one per line, under header lines such as
  "Positive Traits". Some names carry a gloss in parentheses, e.g. "Appreciative (Grateful)".
- Our `styles.txt` (written by `ofa-sic prepare-pcap`) lists the styles of a prepared data set, one per
  line, in a fixed order. Style i is the model's token `<code_i>`.

Data files do not always spell a trait as the list does: case and spacing differ, and a record may say
"Earnest" where the list has "Earnest (Enthusiastic)". `StyleVocabulary.index` accepts all of these.
"""
import difflib
import re
from typing import Dict, List, Optional, Sequence

from ofa_sic.atomic_files import write_text_atomic

_GLOSS = re.compile(r"^(?P<head>.*?)\s*\((?P<gloss>[^()]*)\)$")


class UnknownStyleError(ValueError):
    """A style name that the vocabulary does not contain (the message lists the nearest known names)."""


def normalize_style(name: str) -> str:
    """Return the lookup key of a style name: lower case, surrounding spaces removed, inner spaces single."""
    return " ".join(name.split()).casefold()


def style_head(name: str) -> str:
    """Return a style name without its gloss: "Earnest (Enthusiastic)" -> "Earnest". Other names are returned unchanged."""
    match = _GLOSS.match(name.strip())
    if match and match.group("head"):
        return match.group("head")
    return name.strip()


def style_token(index: int) -> str:
    """Return the dictionary symbol of style number `index`, e.g. 3 -> "<code_3>"."""
    return f"<code_{index}>"


def read_personalities(path: str) -> List[str]:
    """Read PCap's personalities.txt and return its trait names in file order.

    Lines containing "Trait" are section headers ("Positive Traits", ...) and are skipped, as are blank
    lines. Each name is the whole line stripped, gloss included ("Appreciative (Grateful)").
    """
    names = []
    with open(path, encoding="utf-8-sig") as f:
        for line in f:
            name = line.strip()
            if not name or "Trait" in name:
                continue
            names.append(name)
    if not names:
        raise ValueError(f"{path}: no trait names found; expected one trait per line as in PCap's personalities.txt")
    return names


class StyleVocabulary:
    """An ordered list of style names; style i is the token `<code_i>`.

    Lookups (`index`, `canonical`, `in`) ignore case and surrounding spaces, and also accept the head word
    of a glossed name ("earnest" finds "Earnest (Enthusiastic)") when that head word is unambiguous.
    """

    def __init__(self, names: Sequence[str]):
        self._names: List[str] = []
        self._by_key: Dict[str, int] = {}
        for i, raw in enumerate(names):
            name = raw.strip()
            if not name:
                raise ValueError(f"style #{i} is empty; every style needs a name")
            if "\t" in name or "\n" in name or "\r" in name:
                raise ValueError(f"style #{i} {raw!r} contains a tab or line break; style names must be one plain line")
            key = normalize_style(name)
            if key in self._by_key:
                other = self._names[self._by_key[key]]
                raise ValueError(f"style #{i} {name!r} duplicates style #{self._by_key[key]} {other!r}; remove one of them")
            self._by_key[key] = len(self._names)
            self._names.append(name)
        # Head words of glossed names; a head shared by several glossed names is ambiguous (None).
        self._by_head: Dict[str, Optional[int]] = {}
        for i, name in enumerate(self._names):
            head = normalize_style(style_head(name))
            if head == normalize_style(name) or head in self._by_key:
                continue
            self._by_head[head] = None if head in self._by_head else i

    @property
    def names(self) -> List[str]:
        """The style names in vocabulary order (a copy)."""
        return list(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: str) -> bool:
        try:
            self.index(name)
        except UnknownStyleError:
            return False
        return True

    def index(self, name: str) -> int:
        """Return the number of style `name`; raise `UnknownStyleError` naming the nearest styles if unknown."""
        key = normalize_style(name)
        if key in self._by_key:
            return self._by_key[key]
        head = normalize_style(style_head(name))
        if head in self._by_key:  # data says "Sweet (Kind)" where the list has "Sweet"
            return self._by_key[head]
        if head in self._by_head:  # data says "Earnest" where the list has "Earnest (Enthusiastic)"
            i = self._by_head[head]
            if i is not None:
                return i
            shared = [n for n in self._names if normalize_style(style_head(n)) == head]
            raise UnknownStyleError(
                f"style {name!r} is ambiguous: it is the head word of {', '.join(map(repr, shared))}; use the full name"
            )
        raise UnknownStyleError(f"unknown style {name!r}; {self._nearest_hint(name)}")

    def canonical(self, name: str) -> str:
        """Return the vocabulary's spelling of style `name` (see `index`)."""
        return self._names[self.index(name)]

    def token(self, name: str) -> str:
        """Return the `<code_i>` symbol of style `name`."""
        return style_token(self.index(name))

    def _nearest_hint(self, name: str) -> str:
        keys = list(self._by_key) + [h for h, i in self._by_head.items() if i is not None]
        close = difflib.get_close_matches(normalize_style(name), keys, n=5, cutoff=0.5)
        nearest: List[str] = []
        for key in close:
            i = self._by_key.get(key, self._by_head.get(key))
            if self._names[i] not in nearest:
                nearest.append(self._names[i])
        if nearest:
            names = ", ".join(map(repr, nearest))
            return f"nearest known styles: {names} (of {len(self)}); check the spelling or add it to styles.txt"
        first = ", ".join(map(repr, self._names[:5]))
        return f"no known style is close (the {len(self)} styles begin {first}); add it to styles.txt"

    def to_text(self) -> str:
        """Return the styles.txt text: one name per line, in order."""
        return "".join(name + "\n" for name in self._names)

    @classmethod
    def load(cls, path: str) -> "StyleVocabulary":
        """Read a styles.txt file (one style per line, blank lines not allowed)."""
        with open(path, encoding="utf-8-sig") as f:
            lines = f.read().splitlines()
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                raise ValueError(f"{path}:{number}: blank line; styles.txt has one style name per line and no blank lines")
        try:
            return cls(lines)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None

    def save(self, path: str) -> None:
        """Write styles.txt atomically (`ofa_sic.atomic_files.write_text_atomic`)."""
        write_text_atomic(path, self.to_text())
