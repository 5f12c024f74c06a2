"""Bilingual word lists of the synthetic benchmark: colours, sizes, objects, landmarks.

Every English word used in a generated caption has its Arabic counterpart here,
with the inflected forms Arabic agreement needs: an adjective has masculine and
feminine singular forms and masculine and feminine dual forms in the nominative
(``-ان``) and the genitive (``-ين``); a counted noun has its singular, dual and
plural forms and its grammatical gender, which decides the form of the number
words 3..5 (reversed agreement) and of the adjectives that follow it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ArabicAdjective:
    """The forms of one Arabic adjective, chosen by the noun it follows."""

    masc: str
    fem: str
    masc_dual: str
    fem_dual: str
    masc_dual_gen: str
    fem_dual_gen: str

    def agree(self, count: int, feminine: bool, genitive: bool = False) -> str:
        """Form agreeing with ``count`` objects of a noun of the given gender.

        Singular and dual follow the noun's gender; a non-human plural (3..5
        objects here) takes the feminine singular, as in ``سيارات حمراء``.
        """
        if count == 1:
            return self.fem if feminine else self.masc
        if count == 2:
            if genitive:
                return self.fem_dual_gen if feminine else self.masc_dual_gen
            return self.fem_dual if feminine else self.masc_dual
        return self.fem


def regular_adjective(masc: str) -> ArabicAdjective:
    """An adjective with the regular feminine ``-ة`` and dual ``-ان``/``-تان``."""
    return ArabicAdjective(
        masc=masc,
        fem=masc + "ة",
        masc_dual=masc + "ان",
        fem_dual=masc + "تان",
        masc_dual_gen=masc + "ين",
        fem_dual_gen=masc + "تين",
    )


@dataclass(frozen=True)
class Colour:
    """A colour name, the RGB used to paint it and its Arabic adjective."""

    name: str
    rgb: tuple[int, int, int]
    arabic: ArabicAdjective


def _colour_of_pattern_afal(name: str, rgb: tuple[int, int, int], masc: str, fem: str) -> Colour:
    """Colours of the pattern أفعل / فعلاء, whose duals are أفعلان / فعلاوان."""
    fem_stem = fem[:-1]  # drop the final hamza: بيضاء -> بيضا
    adjective = ArabicAdjective(
        masc=masc,
        fem=fem,
        masc_dual=masc + "ان",
        fem_dual=fem_stem + "وان",
        masc_dual_gen=masc + "ين",
        fem_dual_gen=fem_stem + "وين",
    )
    return Colour(name, rgb, adjective)


COLOURS: dict[str, Colour] = {
    colour.name: colour
    for colour in (
        _colour_of_pattern_afal("white", (236, 236, 230), "أبيض", "بيضاء"),
        _colour_of_pattern_afal("red", (200, 38, 32), "أحمر", "حمراء"),
        _colour_of_pattern_afal("blue", (36, 84, 206), "أزرق", "زرقاء"),
        _colour_of_pattern_afal("yellow", (236, 204, 40), "أصفر", "صفراء"),
        _colour_of_pattern_afal("green", (40, 150, 52), "أخضر", "خضراء"),
        _colour_of_pattern_afal("black", (26, 26, 28), "أسود", "سوداء"),
        Colour("gray", (132, 132, 136), regular_adjective("رمادي")),
        Colour("brown", (112, 70, 34), regular_adjective("بني")),
    )
}

SIZES: dict[str, ArabicAdjective] = {
    "large": regular_adjective("كبير"),
    "small": regular_adjective("صغير"),
}

#: Side of one object as a share of the image side, per size word.
SIZE_FRACTION: dict[str, float] = {"large": 0.15, "small": 0.09}

ENGLISH_COUNT_WORDS: dict[int, str] = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}

#: Arabic 3..5: (form used with a masculine noun, form used with a feminine noun).
ARABIC_COUNT_WORDS: dict[int, tuple[str, str]] = {
    3: ("ثلاثة", "ثلاث"),
    4: ("أربعة", "أربع"),
    5: ("خمسة", "خمس"),
}
ARABIC_ONE: tuple[str, str] = ("واحد", "واحدة")


@dataclass(frozen=True)
class ArabicNoun:
    """A countable Arabic noun (indefinite and definite forms) and its gender."""

    singular: str
    dual: str
    dual_gen: str
    plural: str
    feminine: bool
    definite_singular: str
    definite_dual: str
    definite_plural: str


def simple_noun(singular: str, dual: str, dual_gen: str, plural: str, feminine: bool) -> ArabicNoun:
    """A one-word noun whose definite forms take the article ``ال``."""
    return ArabicNoun(
        singular, dual, dual_gen, plural, feminine, "ال" + singular, "ال" + dual, "ال" + plural
    )


@dataclass(frozen=True)
class ObjectKind:
    """A kind of countable object drawn in a scene."""

    name: str
    english_singular: str
    english_plural: str
    english_participle: str  # "parked", as in "three planes are parked ..."
    arabic: ArabicNoun
    arabic_participle: ArabicAdjective


OBJECT_KINDS: dict[str, ObjectKind] = {
    kind.name: kind
    for kind in (
        ObjectKind("field", "field", "fields", "spread out",
                   simple_noun("حقل", "حقلان", "حقلين", "حقول", False), regular_adjective("ممتد")),
        ObjectKind("pond", "pond", "ponds", "scattered",
                   simple_noun("بركة", "بركتان", "بركتين", "برك", True), regular_adjective("منتشر")),
        ObjectKind("house", "house", "houses", "built",
                   simple_noun("منزل", "منزلان", "منزلين", "منازل", False), regular_adjective("مبني")),
        ObjectKind("building", "building", "buildings", "built",
                   ArabicNoun("مبنى", "مبنيان", "مبنيين", "مبانٍ", False, "المبنى", "المبنيان", "المباني"),
                   regular_adjective("مبني")),
        ObjectKind("tree", "tree", "trees", "planted",
                   simple_noun("شجرة", "شجرتان", "شجرتين", "أشجار", True), regular_adjective("مزروع")),
        ObjectKind("boat", "boat", "boats", "floating",
                   simple_noun("قارب", "قاربان", "قاربين", "قوارب", False), regular_adjective("عائم")),
        ObjectKind("rock", "rock", "rocks", "scattered",
                   simple_noun("صخرة", "صخرتان", "صخرتين", "صخور", True), regular_adjective("متناثر")),
        ObjectKind("storage_tank", "storage tank", "storage tanks", "standing",
                   simple_noun("خزان", "خزانان", "خزانين", "خزانات", False), regular_adjective("قائم")),
        ObjectKind("plane", "plane", "planes", "parked",
                   simple_noun("طائرة", "طائرتان", "طائرتين", "طائرات", True), regular_adjective("متوقف")),
        ObjectKind("car", "car", "cars", "parked",
                   simple_noun("سيارة", "سيارتان", "سيارتين", "سيارات", True), regular_adjective("متوقف")),
        ObjectKind("tennis_court", "tennis court", "tennis courts", "located",
                   ArabicNoun("ملعب تنس", "ملعبا تنس", "ملعبي تنس", "ملاعب تنس", False,
                              "ملعب التنس", "ملعبا التنس", "ملاعب التنس"),
                   regular_adjective("واقع")),
    )
}


@dataclass(frozen=True)
class Landmark:
    """The reference object a scene's relation is stated against."""

    name: str
    english: str  # with its article: "the road"
    arabic: str  # definite: "الطريق"
    arabic_feminine: bool
    linear: bool  # a band across the image (road, river) rather than a compact object


LANDMARKS: dict[str, Landmark] = {
    landmark.name: landmark
    for landmark in (
        Landmark("road", "the road", "الطريق", False, True),
        Landmark("river", "the river", "النهر", False, True),
        Landmark("beach", "the beach", "الشاطئ", False, True),
        Landmark("bridge", "the bridge", "الجسر", False, True),
        Landmark("lake", "the lake", "البحيرة", True, False),
        Landmark("factory", "the factory", "المصنع", False, False),
        Landmark("terminal", "the terminal", "مبنى الركاب", False, False),
        Landmark("building", "the building", "المبنى", False, False),
        Landmark("track", "the running track", "مضمار الجري", False, False),
    )
}

RELATIONS_LINEAR: tuple[str, ...] = ("left", "right", "above", "below")
RELATIONS_ALL: tuple[str, ...] = RELATIONS_LINEAR + ("around",)
