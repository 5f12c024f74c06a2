"""Arabic phrases describing a scene, parallel to ``english.py``.

Word order is Arabic: the noun comes first and its adjectives follow it
(``ثلاث طائرات بيضاء كبيرة``). Agreement rules applied:

* 1 object: singular noun, then ``واحد``/``واحدة`` agreeing with it, then adjectives
  in the noun's gender (``سيارة واحدة حمراء``).
* 2 objects: the dual noun and dual adjectives, nominative ``-ان`` or, after a
  preposition, genitive ``-ين`` (``طائرتان بيضاوان``, ``على يمين طائرتين بيضاوين``).
* 3..5 objects: the number word with reversed gender (``ثلاثة خزانات``, ``ثلاث سيارات``),
  the plural noun, and feminine singular adjectives (non-human plural).
* A verb before its subject is masculine only for one or two masculine objects.
"""

from __future__ import annotations

from rsitr.data.synth.english import pick
from rsitr.data.synth.scene import Scene
from rsitr.data.synth.vocabulary import (
    ARABIC_COUNT_WORDS,
    ARABIC_ONE,
    COLOURS,
    LANDMARKS,
    OBJECT_KINDS,
    SIZES,
    ArabicAdjective,
)

#: Phrasings parallel to ``english.RELATION_PHRASES`` (same variant index).
RELATION_PREPOSITIONS: dict[str, tuple[str, ...]] = {
    "left": ("على يسار", "في الجهة اليسرى من"),
    "right": ("على يمين", "في الجهة اليمنى من"),
    "above": ("فوق", "في الجهة العليا من"),
    "below": ("أسفل", "في الجهة السفلى من"),
    "around": ("حول", "من حول"),
}

INVERSE_RELATION_PREPOSITIONS: dict[str, tuple[str, ...]] = {
    "left": ("على يمين ", "في الجهة اليمنى من "),
    "right": ("على يسار ", "في الجهة اليسرى من "),
    "above": ("أسفل ", "في الجهة السفلى من "),
    "below": ("فوق ", "في الجهة العليا من "),
}
NEAR_PREPOSITIONS: tuple[str, ...] = ("بجانب", "بالقرب من", "قرب")
SURROUNDED_BY: tuple[str, str] = ("محاط ب", "محاطة ب")  # masculine, feminine; the ب joins the next word


def _adjectives(scene: Scene, adjectives: list[ArabicAdjective], genitive: bool, definite: bool) -> list[str]:
    feminine = OBJECT_KINDS[scene.object_kind].arabic.feminine
    forms = [adjective.agree(scene.count, feminine, genitive) for adjective in adjectives]
    return ["ال" + form for form in forms] if definite else forms


def _noun_phrase(scene: Scene, adjectives: list[ArabicAdjective], *, genitive: bool = False,
                 definite: bool = False) -> str:
    noun = OBJECT_KINDS[scene.object_kind].arabic
    words = _adjectives(scene, adjectives, genitive, definite)
    if definite:  # templates use definite phrases only as subjects (nominative)
        head = {1: noun.definite_singular, 2: noun.definite_dual}.get(scene.count, noun.definite_plural)
        return " ".join([head, *words])
    if scene.count == 1:
        return " ".join([noun.singular, ARABIC_ONE[int(noun.feminine)], *words])
    if scene.count == 2:
        return " ".join([noun.dual_gen if genitive else noun.dual, *words])
    masculine_form, feminine_form = ARABIC_COUNT_WORDS[scene.count]
    number = masculine_form if not noun.feminine else feminine_form  # reversed agreement
    return " ".join([number, noun.plural, *words])


def _verb(scene: Scene, masculine: str, feminine: str) -> str:
    """A verb placed before its subject: masculine only for 1-2 masculine objects."""
    noun_is_feminine = OBJECT_KINDS[scene.object_kind].arabic.feminine
    return masculine if scene.count <= 2 and not noun_is_feminine else feminine


def arabic_slots(scene: Scene, variant: int = 0) -> dict[str, str]:
    """Template slots for ``scene``, parallel to :func:`english.english_slots` (same ``variant``)."""
    spec = scene.spec
    landmark = LANDMARKS[scene.landmark]
    colour = COLOURS[scene.colour].arabic
    size = SIZES[scene.size]
    participle = OBJECT_KINDS[scene.object_kind].arabic_participle
    feminine = OBJECT_KINDS[scene.object_kind].arabic.feminine
    if scene.relation == "around":
        inverse = SURROUNDED_BY[int(landmark.arabic_feminine)]
    else:
        inverse = pick(INVERSE_RELATION_PREPOSITIONS[scene.relation], variant)
    return {
        "lie_verb": _verb(scene, "يقع", "تقع"),
        "exist_verb": _verb(scene, "يوجد", "توجد"),
        "appear_verb": _verb(scene, "يظهر", "تظهر"),
        "np_c": _noun_phrase(scene, []),
        "np_cc": _noun_phrase(scene, [colour]),
        "np_cs": _noun_phrase(scene, [size]),
        "np_full": _noun_phrase(scene, [colour, size]),
        "np_def_col": _noun_phrase(scene, [colour], definite=True),
        "np_def_size_col": _noun_phrase(scene, [colour, size], definite=True),
        "rel": f"{pick(RELATION_PREPOSITIONS[scene.relation], variant)} {landmark.arabic}",
        "inv_rel_np": inverse + _noun_phrase(scene, [colour], genitive=True),
        "near": pick(NEAR_PREPOSITIONS, variant),
        "lm": landmark.arabic,
        "loc": f" {spec.location_ar}" if spec.location_ar else "",
        "with": spec.with_ar,
        "participle": participle.agree(scene.count, feminine),
    }
