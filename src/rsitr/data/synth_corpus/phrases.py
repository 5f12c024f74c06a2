"""Word lists of the corpus captions: web names of the classes, alt-text patterns, junk.

Written for the corpus, not taken from the benchmark's templates: web alt-text
(the raw material of RS5M and of RemoteCLIP's caption corpus) names a scene in a
few words ("aerial view of an airport"), now and then lists what it shows, and
often carries words unrelated to the picture: stock-photo phrases, credits,
dates, camera file names.
"""

from __future__ import annotations

#: Web names per scene class: (phrase, is_mass_noun). A mass noun takes no article.
CLASS_NAMES: dict[str, tuple[tuple[str, bool], ...]] = {
    "farmland": (("farmland", True), ("agricultural land", True), ("farm fields", True)),
    "forest": (("forest", False), ("woodland", True), ("pine forest", False)),
    "river": (("river", False), ("winding river", False), ("river valley", False)),
    "lake": (("lake", False), ("lake shore", False), ("small lake", False)),
    "beach": (("beach", False), ("coastline", False), ("sandy beach", False), ("seaside", True)),
    "desert": (("desert", False), ("arid desert", False), ("sand dunes", True)),
    "dense_residential": (("dense residential area", False), ("crowded neighbourhood", False),
                          ("dense housing", True)),
    "sparse_residential": (("sparse residential area", False), ("suburb", False), ("suburban houses", True)),
    "industrial": (("industrial area", False), ("industrial zone", False), ("factory site", False)),
    "airport": (("airport", False), ("airfield", False), ("international airport", False)),
    "parking": (("parking lot", False), ("car park", False), ("parking area", False)),
    "playground": (("playground", False), ("sports ground", False), ("stadium", False)),
    "bridge": (("bridge", False), ("bridge over water", False), ("road bridge", False)),
}

#: Scene-level patterns; {np} is a name with its article, {bare} without.
CLASS_PATTERNS: tuple[str, ...] = (
    "aerial view of {np}",
    "satellite image of {np}",
    "{bare} from above",
    "drone photo of {np}",
    "top down view of {np}",
    "{np} seen from the air",
    "bird's eye view of {np}",
    "{bare}, aerial",
    "remote sensing image of {np}",
    "overhead shot of {np}",
    "{bare}",
)

#: Patterns naming the objects; {objects} is "three white storage tanks", {landmark} "a road".
OBJECT_PATTERNS: tuple[str, ...] = (
    "{objects} {relation} {landmark}",
    "{objects} at {np}",
    "aerial view of {np} with {objects}",
    "{objects}, {bare}",
    "satellite photo: {objects} {relation} {landmark}",
)

#: How a scene relation reads in alt-text; "near" is true of every relation.
RELATION_WORDS: dict[str, tuple[str, ...]] = {
    "left": ("left of", "near", "beside"),
    "right": ("right of", "near", "beside"),
    "above": ("above", "near", "north of"),
    "below": ("below", "near", "south of"),
    "around": ("around", "surrounding", "near"),
}

COUNT_WORDS: dict[int, str] = {1: "a", 2: "two", 3: "three", 4: "four", 5: "five"}

#: Irrelevant phrases; {name}, {year}, {date}, {n4}, {n5} are filled in at random.
NOISE_PATTERNS: tuple[str, ...] = (
    "stock photo",
    "high resolution",
    "hd wallpaper",
    "4k",
    "royalty free",
    "free download",
    "photo by {name}",
    "© {name} {year}",
    "image credit: {name}",
    "{date}",
    "IMG_{n4}.jpg",
    "DSC{n5}",
    "editorial use only",
    "stock image {n5}",
)

NOISE_SEPARATORS: tuple[str, ...] = (" - ", " | ", ", ", " ")

#: Fictional credit names.
CREDIT_NAMES: tuple[str, ...] = ("j. smith", "a. novak", "m. garcia", "k. tanaka", "l. okafor", "s. larsen",
                                 "r. haddad", "e. moreau")
