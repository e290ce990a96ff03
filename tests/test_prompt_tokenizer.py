"""Prompt ids against the real ModelScope `OFATokenizer` (the tokenizer of ModelScope's and the HF port's
OFA) on the demo BPE: StylePrompt and MLMPrompt give, for every template and style, the ids ModelScope's
preprocessor gives the template with `<code_i>` (or the style's words) in the slot."""
import json

import pytest

modelscope_ofa = pytest.importorskip("modelscope.models.multi_modal.ofa", reason="needs the interop extra (make install)")

from ofa_sic.convert import vocab  # noqa: E402
from ofa_sic.convert.report import Report  # noqa: E402
from ofa_sic.data.mlm_dataset import DEFAULT_MLM_PROMPT, MLMPrompt  # noqa: E402
from ofa_sic.data.prompts import StylePrompt, template_without_space_before_style  # noqa: E402
from ofa_sic.data.styles import StyleVocabulary  # noqa: E402
from ofa_sic.data.text import TextCodec, build_ofa_dictionary  # noqa: E402

PROTOTYPE_PROMPT = " what does the image describe? reply in personality {}."
TEMPLATES = [
    " what does the image describe? write a {} reply.",  # ofa_sic's default: a space before {}
    PROTOTYPE_PROMPT,
    " what does the image describe? write a{} reply.",  # no space before {}
    " write a  {} reply.",  # two spaces
    "{} what does the image describe?",  # {} at the start
    " describe it in a {}",  # {} at the end
    " {}",
    " a\t{}.",  # another white space than " "
    " what does the image describe?",  # style-free (OFA's caption prompt)
]
MLM_TEMPLATES = [DEFAULT_MLM_PROMPT, ' what is the complete text of " {text} "? {style}', " {style}: {text}"]
CAPTION = "two red circles on gray"


@pytest.fixture(scope="module")
def parts(demo_data, tmp_path_factory):
    """The demo BPE as ofa_sic's codec and as ModelScope's tokenizer (vocab.json/merges.txt written by the
    converter, `<code_i>`/`<bin_i>` added as ModelScope's OfaBasePreprocessor adds them)."""
    bpe = str(demo_data["bpe"])
    folder = tmp_path_factory.mktemp("tokenizer")
    vocab.write_port_files(vocab.from_bpe_dir(bpe, 8192, 1000, Report()), str(folder))
    tokenizer = modelscope_ofa.OFATokenizer.from_pretrained(str(folder))
    tokenizer.add_tokens([f"<code_{i}>" for i in range(8192)])
    tokenizer.add_tokens([f"<bin_{i}>" for i in range(1000)])
    dictionary = build_ofa_dictionary(bpe, 8192, 1000)
    styles = StyleVocabulary.load(str(demo_data["data"] / "styles.txt"))
    return {"codec": TextCodec(bpe, dictionary), "tokenizer": tokenizer, "styles": styles, "bpe": demo_data["bpe"]}


def modelscope_ids(tokenizer, text):
    """What ModelScope's OfaBasePreprocessor.tokenize_text gives: <s> + tokenizer ids + </s>."""
    return [tokenizer.bos_token_id] + tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]


def slot_text(style_format, index, name):
    return f"<code_{index}>" if style_format == "token" else name.lower()


def test_demo_bpe_has_the_lone_space_token(parts):
    """The space before <code_i> is the token 'Ġ': it must be in dict.txt, or the prompt would hold <unk>."""
    encoder = json.loads((parts["bpe"] / "encoder.json").read_text())
    listed = {line.split()[0] for line in (parts["bpe"] / "dict.txt").read_text().splitlines()}
    assert "Ġ" in encoder and str(encoder["Ġ"]) in listed
    [space] = parts["codec"].encode(" ")
    assert space != parts["codec"].dictionary.unk()
    assert parts["tokenizer"].convert_tokens_to_ids("Ġ") == space


@pytest.mark.parametrize("style_format", ["token", "text"])
@pytest.mark.parametrize("template", TEMPLATES)
def test_style_prompt_ids_equal_modelscope_tokenizer_ids(parts, template, style_format):
    prompt = StylePrompt(template, style_format, parts["styles"], parts["codec"])
    for index, name in enumerate(parts["styles"].names):
        expected = modelscope_ids(parts["tokenizer"], template.format(slot_text(style_format, index, name)))
        assert prompt.token_ids(name) == expected, (template, name)


def test_the_space_before_the_style_token_is_its_own_token(parts):
    prompt = StylePrompt(TEMPLATES[0], "token", parts["styles"], parts["codec"])
    tokens = parts["tokenizer"].convert_ids_to_tokens(prompt.token_ids(parts["styles"].names[1]))
    assert tokens[-6:] == ["Ġa", "Ġ", "<code_1>", "Ġreply", ".", "</s>"]


@pytest.mark.parametrize("style_format", ["token", "text"])
@pytest.mark.parametrize("template", MLM_TEMPLATES)
def test_mlm_prompt_ids_equal_modelscope_tokenizer_ids(parts, template, style_format):
    """With the caption unmasked, the MLM source is the tokenizer's ids of the whole text: the style slot
    follows the caption prompt's rule, and the caption's BPE brings the space before it."""
    prompt = MLMPrompt(template, style_format, parts["styles"], parts["codec"])
    caption = parts["codec"].encode(" " + CAPTION)
    for index, name in enumerate(parts["styles"].names):
        source, position = prompt(name, caption)
        text = template.format(style=slot_text(style_format, index, name), text=CAPTION)
        assert source.tolist() == modelscope_ids(parts["tokenizer"], text), (template, name)
        if style_format == "token":
            assert source[position] == parts["codec"].dictionary.index(f"<code_{index}>")


# ---- the rule before ModelScope's: the spaces before the style token were dropped -----------------------


def old_caption_ids(template, codec, index):
    """ofa_sic's token-format ids before issue 18: the text before {} lost its trailing spaces."""
    if "{}" not in template:
        return [0] + codec.encode(template) + [2]
    prefix, suffix = template.split("{}")
    return [0] + codec.encode(prefix.rstrip(" ")) + [codec.dictionary.index(f"<code_{index}>")] + codec.encode(suffix) + [2]


def old_mlm_before_and_after(template, codec, index):
    """The MLM prompt's token-format ids before issue 18: every literal followed by {style} or {text} lost
    its trailing spaces."""
    head, tail = template.split("{text}")
    sides = []
    for side, before_text in ((head, True), (tail, False)):
        ids = []
        literals = side.split("{style}")
        for i, literal in enumerate(literals):
            followed = i + 1 < len(literals) or before_text
            ids += codec.encode(literal.rstrip(" ") if followed else literal)
            if i + 1 < len(literals):
                ids.append(codec.dictionary.index(f"<code_{index}>"))
        sides.append(ids)
    return sides


@pytest.mark.parametrize("template", TEMPLATES)
def test_old_ids_are_the_new_ids_of_the_template_without_space_before_style(parts, template):
    rewritten = template_without_space_before_style(template)
    assert "{}" not in template or " {}" not in rewritten
    prompt = StylePrompt(rewritten, "token", parts["styles"], parts["codec"])
    for index, name in enumerate(parts["styles"].names):
        assert prompt.token_ids(name) == old_caption_ids(template, parts["codec"], index)
        # ... and those are what ModelScope's tokenizer gives the rewritten template.
        assert prompt.token_ids(name) == modelscope_ids(parts["tokenizer"], rewritten.format(f"<code_{index}>"))


@pytest.mark.parametrize("template", MLM_TEMPLATES)
def test_old_mlm_ids_are_the_new_ids_of_the_template_without_space_before_style(parts, template):
    prompt = MLMPrompt(template_without_space_before_style(template), "token", parts["styles"], parts["codec"])
    for index, name in enumerate(parts["styles"].names):
        before, after, _, _ = prompt.parts(name)
        assert [before, after] == old_mlm_before_and_after(template, parts["codec"], index)


def test_rewrite_touches_only_the_spaces_before_the_style_slot():
    assert template_without_space_before_style(" write a  {} reply. ") == " write a{} reply. "
    assert template_without_space_before_style(" what does the image describe?") == " what does the image describe?"
    assert template_without_space_before_style("a\t{}") == "a\t{}"
    assert template_without_space_before_style(' the {style} reply " {text} "?') == ' the{style} reply " {text} "?'
    assert template_without_space_before_style(' {{a}} {style} " {text} "') == ' {{a}}{style} " {text} "'
