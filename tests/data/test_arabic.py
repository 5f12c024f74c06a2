"""Arabic caption normalisation, rule by rule."""

from __future__ import annotations

import pytest

from rsitr.data.arabic import is_arabic, normalize_arabic, normalize_caption


def test_strips_tashkeel_and_superscript_alef():
    assert normalize_arabic("مَطَارٌ كَبِيرٌ") == "مطار كبير"
    assert normalize_arabic("هٰذا") == "هذا"  # U+0670 superscript alef
    assert normalize_arabic("شدّة") == "شدة"  # shadda
    assert normalize_arabic("مَطَار", strip_diacritics=False) == "مَطَار"


def test_strips_tatweel():
    assert normalize_arabic("طـــريق") == "طريق"
    assert normalize_arabic("طـريق", strip_tatweel=False) == "طـريق"


@pytest.mark.parametrize("variant", ["أ", "إ", "آ", "ٱ"])
def test_unifies_alef_variants(variant):
    assert normalize_arabic(f"{variant}رض") == "ارض"
    assert normalize_arabic(f"{variant}رض", unify_alef=False) == f"{variant}رض"


def test_decomposed_madda_is_treated_like_composed():
    assert normalize_arabic("\u0627\u0653رض") == "ارض"


def test_unifies_alef_maqsura_to_yeh():
    assert normalize_arabic("مبنى") == "مبني"
    assert normalize_arabic("مبنى", unify_yeh=False) == "مبنى"


def test_keeps_hamza_seats_and_teh_marbuta():
    assert normalize_arabic("بيئة") == "بيئة"  # yeh with hamza and teh marbuta kept
    assert normalize_arabic("مؤسسة") == "مؤسسة"  # waw with hamza kept


def test_other_scripts_pass_through():
    assert normalize_arabic("A large airport .") == "A large airport ."


def test_normalize_caption_applies_only_to_arabic():
    assert normalize_caption("مَطَارٌ", "ar") == "مطار"
    assert normalize_caption("مَطَارٌ", "ar-SA") == "مطار"
    assert normalize_caption("مَطَارٌ", "ar", strip_diacritics=False) == "مَطَارٌ"
    assert normalize_caption("مَطَارٌ", "en") == "مَطَارٌ"
    assert is_arabic("AR_eg") and not is_arabic("arn")
