"""Arabic caption normalisation (orthographic variants that carry no retrieval meaning).

Rules, each switchable:

* ``strip_diacritics``: remove tashkeel U+064B-U+065F (fathatan ... wavy hamza below,
  incl. shadda, sukun, maddah/hamza marks) and U+0670 (superscript alef).
* ``strip_tatweel``: remove the kashida U+0640 used only to stretch words.
* ``unify_alef``: alef with hamza above/below, with madda and alef wasla
  (أ U+0623, إ U+0625, آ U+0622, ٱ U+0671) become bare alef ا U+0627.
* ``unify_yeh``: alef maqsura ى U+0649 becomes yeh ي U+064A (the two are used
  interchangeably at word ends).

Deliberately kept: yeh with hamza ئ U+0626 and waw with hamza ؤ U+0624 (the hamza is a
consonant, not a spelling variant), and teh marbuta ة U+0629 (merging it with heh ه would
conflate distinct words). Text is NFC-composed first so decomposed input
(alef + combining madda) is treated like its composed form.
"""

from __future__ import annotations

import re
import unicodedata

TASHKEEL = re.compile("[\u064b-\u065f\u0670]")
TATWEEL = "\u0640"
ALEF_VARIANTS = re.compile("[\u0622\u0623\u0625\u0671]")
ALEF = "\u0627"
ALEF_MAQSURA = "\u0649"
YEH = "\u064a"


def normalize_arabic(
    text: str,
    *,
    strip_diacritics: bool = True,
    strip_tatweel: bool = True,
    unify_alef: bool = True,
    unify_yeh: bool = True,
) -> str:
    """Normalise Arabic ``text`` by the rules in the module docstring; other scripts pass through."""
    text = unicodedata.normalize("NFC", text)
    if unify_alef:
        text = ALEF_VARIANTS.sub(ALEF, text)
    if strip_diacritics:
        text = TASHKEEL.sub("", text)
    if strip_tatweel:
        text = text.replace(TATWEEL, "")
    if unify_yeh:
        text = text.replace(ALEF_MAQSURA, YEH)
    return text


def is_arabic(language: str) -> bool:
    """True for "ar" and regional tags such as "ar-SA" or "ar_EG"."""
    return re.split(r"[-_]", language.strip().lower(), maxsplit=1)[0] == "ar"


def normalize_caption(text: str, language: str, **options: bool) -> str:
    """Apply :func:`normalize_arabic` (with ``options``) to Arabic captions; others unchanged."""
    return normalize_arabic(text, **options) if is_arabic(language) else text
