"""Style vocabulary: reading personalities.txt, lookups, errors, styles.txt round trip."""
import os

import pytest

from ofa_sic.data.styles import StyleVocabulary, UnknownStyleError, read_personalities, style_head, style_token

NAMES = ["Happy", "Appreciative (Grateful)", "Earnest (Enthusiastic)", "Sarcastic", "Sweet", "Gloomy"]


def test_read_personalities_skips_headers_and_blank_lines_and_keeps_glosses(tmp_path):
    path = tmp_path / "personalities.txt"
    path.write_text("Positive Traits\nHappy\n  Appreciative (Grateful)  \n\nNegative Traits\nSarcastic\n\n", encoding="utf-8")
    assert read_personalities(str(path)) == ["Happy", "Appreciative (Grateful)", "Sarcastic"]


def test_read_personalities_without_any_trait_is_an_error(tmp_path):
    path = tmp_path / "personalities.txt"
    path.write_text("Positive Traits\n\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no trait names"):
        read_personalities(str(path))


def test_lookup_ignores_case_and_spaces():
    vocab = StyleVocabulary(NAMES)
    assert len(vocab) == 6
    assert vocab.names == NAMES
    assert vocab.index("Happy") == 0
    assert vocab.index("  hAPPY ") == 0
    assert vocab.index("appreciative   (grateful)") == 1
    assert vocab.canonical(" sarcastic") == "Sarcastic"
    assert vocab.token("sarcastic") == "<code_3>" == style_token(3)


def test_glossed_name_is_found_by_its_head_word():
    vocab = StyleVocabulary(NAMES)
    assert style_head("Earnest (Enthusiastic)") == "Earnest"
    assert vocab.index("Earnest") == 2
    assert vocab.canonical(" earnest ") == "Earnest (Enthusiastic)"
    # The other way round: the data glosses a name the list has bare.
    assert vocab.canonical("Sweet (Kind)") == "Sweet"
    assert "Grateful" not in vocab  # the gloss alone is not a name


def test_ambiguous_head_word_is_an_error():
    vocab = StyleVocabulary(["Calm (Peaceful)", "Calm (Quiet)"])
    with pytest.raises(UnknownStyleError, match="ambiguous.*Calm \\(Peaceful\\).*Calm \\(Quiet\\)"):
        vocab.index("Calm")


def test_unknown_style_error_names_the_nearest_styles():
    vocab = StyleVocabulary(NAMES)
    with pytest.raises(UnknownStyleError) as info:
        vocab.index("Sarcstic")
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert "'Sarcstic'" in message and "'Sarcastic'" in message
    with pytest.raises(UnknownStyleError, match="'Earnest \\(Enthusiastic\\)'"):
        vocab.index("Earnst")
    with pytest.raises(UnknownStyleError, match="no known style is close"):
        vocab.index("Zzzzzz")


def test_bad_vocabularies_are_rejected():
    with pytest.raises(ValueError, match="duplicates"):
        StyleVocabulary(["Happy", " happy"])
    with pytest.raises(ValueError, match="empty"):
        StyleVocabulary(["Happy", "  "])
    with pytest.raises(ValueError, match="tab"):
        StyleVocabulary(["Ha\tppy"])


def test_save_and_load_round_trip_atomically(tmp_path):
    path = tmp_path / "styles.txt"
    StyleVocabulary(NAMES).save(str(path))
    assert path.read_text(encoding="utf-8") == "".join(n + "\n" for n in NAMES)
    assert os.listdir(tmp_path) == ["styles.txt"]  # no temporary file left behind
    assert StyleVocabulary.load(str(path)).names == NAMES


def test_load_rejects_blank_lines_with_line_number(tmp_path):
    path = tmp_path / "styles.txt"
    path.write_text("Happy\n\nSad\n", encoding="utf-8")
    with pytest.raises(ValueError, match="styles.txt:2: blank line"):
        StyleVocabulary.load(str(path))
