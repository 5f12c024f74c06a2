"""The scene classes of the synthetic benchmark, modelled on RSICD / UCM categories.

A class fixes what a scene contains (the kind of counted object, the landmark the
objects are placed against, the colours and relations that are allowed) and how
captions name the scene in English and Arabic. How a class is painted lives in
``backgrounds.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rsitr.data.synth.vocabulary import LANDMARKS, RELATIONS_ALL, RELATIONS_LINEAR


@dataclass(frozen=True)
class SceneClass:
    """Everything captions and scene sampling need to know about one class."""

    name: str
    keyword: str  # English phrase found in every caption of this class and in no other class's
    object_kind: str
    landmark: str
    colours: tuple[str, ...]
    location_en: str  # "in the farmland"; empty when the landmark already names the scene
    location_ar: str
    with_en: str  # opens "a piece of farmland with three yellow fields ."
    with_ar: str
    sentences: tuple[tuple[str, str], ...]  # scene-level (English, Arabic) captions, always true
    relations: tuple[str, ...] = field(init=False)  # those the landmark allows: a linear one has no "around"

    def __post_init__(self) -> None:
        object.__setattr__(self, "relations", RELATIONS_LINEAR if LANDMARKS[self.landmark].linear else RELATIONS_ALL)


_CLASSES: tuple[SceneClass, ...] = (
    SceneClass(
        "farmland", "farmland", "field", "road", ("green", "yellow", "brown"),
        "in the farmland", "في الأراضي الزراعية",
        "a piece of farmland with", "أرض زراعية فيها",
        (("many pieces of farmland are divided by a road .", "قطع كثيرة من الأراضي الزراعية يقسمها طريق ."),
         ("a road runs through the farmland .", "طريق يمر عبر الأراضي الزراعية .")),
    ),
    SceneClass(
        "forest", "forest", "pond", "road", ("blue", "brown", "gray"),
        "in the forest", "في الغابة",
        "a dense forest with", "غابة كثيفة فيها",
        (("a road passes through the dense green forest .", "طريق يمر عبر الغابة الخضراء الكثيفة ."),
         ("the forest is dense and green .", "الغابة كثيفة وخضراء .")),
    ),
    SceneClass(
        "river", "river", "house", "river", ("white", "red", "blue", "yellow"),
        "", "",
        "a river with", "نهر بالقرب منه",
        (("a river flows through the green land .", "نهر يتدفق عبر الأرض الخضراء ."),
         ("the river is long and curved .", "النهر طويل ومتعرج .")),
    ),
    SceneClass(
        "lake", "lake", "tree", "lake", ("green", "yellow", "red"),
        "", "",
        "a lake with", "بحيرة بالقرب منها",
        (("a blue lake lies in the green grass .", "بحيرة زرقاء تقع وسط العشب الأخضر ."),
         ("the lake is blue and calm .", "البحيرة زرقاء وهادئة .")),
    ),
    SceneClass(
        "beach", "beach", "boat", "beach", ("white", "red", "yellow"),
        "", "",
        "a beach with", "شاطئ بالقرب منه",
        (("the yellow beach is next to the blue sea .", "الشاطئ الأصفر بجانب البحر الأزرق ."),
         ("white waves break on the sandy beach .", "أمواج بيضاء تتكسر على الشاطئ الرملي .")),
    ),
    SceneClass(
        "desert", "desert", "rock", "road", ("black", "gray", "red"),
        "in the desert", "في الصحراء",
        "a desert with", "صحراء فيها",
        (("the desert is yellow and bare .", "الصحراء صفراء وجرداء ."),
         ("a road crosses the bare desert .", "طريق يعبر الصحراء الجرداء .")),
    ),
    SceneClass(
        "dense_residential", "dense residential", "building", "road", ("white", "red", "blue", "yellow"),
        "in the dense residential area", "في المنطقة السكنية الكثيفة",
        "a dense residential area with", "منطقة سكنية كثيفة فيها",
        (("many houses are closely packed in the dense residential area .",
          "منازل كثيرة متلاصقة في المنطقة السكنية الكثيفة ."),
         ("a road goes through the dense residential area .", "طريق يمر عبر المنطقة السكنية الكثيفة .")),
    ),
    SceneClass(
        "sparse_residential", "sparse residential", "house", "road", ("white", "red", "blue", "yellow"),
        "in the sparse residential area", "في المنطقة السكنية المتفرقة",
        "a sparse residential area with", "منطقة سكنية متفرقة فيها",
        (("green trees are scattered in the sparse residential area .",
          "أشجار خضراء متناثرة في المنطقة السكنية المتفرقة ."),
         ("a road passes by the sparse residential area .", "طريق يمر بجانب المنطقة السكنية المتفرقة .")),
    ),
    SceneClass(
        "industrial", "industrial area", "storage_tank", "factory", ("white", "red", "blue", "green"),
        "in the industrial area", "في المنطقة الصناعية",
        "an industrial area with", "منطقة صناعية فيها",
        (("a large factory stands in the industrial area .", "مصنع كبير يقع في المنطقة الصناعية ."),
         ("the industrial area is gray and busy .", "المنطقة الصناعية رمادية ومزدحمة .")),
    ),
    SceneClass(
        "airport", "airport", "plane", "terminal", ("white", "red", "blue", "yellow"),
        "at the airport", "في المطار",
        "an airport with", "مطار فيه",
        (("the airport is very large .", "المطار كبير جدا ."),
         ("the terminal stands on the gray apron of the airport .", "مبنى الركاب قائم على ساحة المطار الرمادية .")),
    ),
    SceneClass(
        "parking", "parking lot", "car", "building", ("white", "red", "blue", "yellow"),
        "in the parking lot", "في موقف السيارات",
        "a parking lot with", "موقف سيارات فيه",
        (("white lines divide the parking lot into spaces .", "خطوط بيضاء تقسم موقف السيارات إلى أماكن ."),
         ("the parking lot is next to a building .", "موقف السيارات بجانب مبنى .")),
    ),
    SceneClass(
        "playground", "playground", "tennis_court", "track", ("green", "blue", "red"),
        "in the playground", "في الملعب",
        "a playground with", "ملعب رياضي فيه",
        (("a red running track surrounds a green field in the playground .",
          "مضمار جري أحمر يحيط بأرضية خضراء في الملعب ."),
         ("the playground is surrounded by green grass .", "الملعب محاط بعشب أخضر .")),
    ),
    SceneClass(
        "bridge", "bridge", "boat", "bridge", ("white", "red", "yellow"),
        "", "",
        "a bridge over the water with", "جسر فوق الماء بالقرب منه",
        (("a bridge crosses the water .", "جسر يعبر الماء ."),
         ("the gray bridge spans the blue water .", "الجسر الرمادي يمتد فوق الماء الأزرق .")),
    ),
)

CLASSES: dict[str, SceneClass] = {scene_class.name: scene_class for scene_class in _CLASSES}

#: Names of the scene classes, in a fixed order.
SCENE_CLASSES: tuple[str, ...] = tuple(CLASSES)
