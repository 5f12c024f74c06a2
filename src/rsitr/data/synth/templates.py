"""Parallel English / Arabic caption templates and the attributes each one states.

Slots are filled from ``english_slots`` / ``arabic_slots``. ``mentions`` lists the
attributes a filled template states explicitly; fine-grained twins draw most of
their captions from templates that mention the attribute the twin changes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Template:
    """One caption pattern in both languages."""

    name: str
    english: str
    arabic: str
    mentions: frozenset[str]


def _template(name: str, english: str, arabic: str, *mentions: str) -> Template:
    return Template(name, english, arabic, frozenset(mentions))


TEMPLATES: tuple[Template, ...] = (
    _template("there_is", "there {be} {np_cc} {rel}{loc} .", "هناك {np_cc} {rel}{loc} .",
              "count", "colour", "relation"),
    _template("full", "{np_full} {be} {rel}{loc} .", "{lie_verb} {np_full} {rel}{loc} .",
              "count", "size", "colour", "relation"),
    _template("located", "{np_c} {be} located {rel}{loc} .", "{exist_verb} {np_c} {rel}{loc} .",
              "count", "relation"),
    _template("next_to", "{np_def_col} {be} {near} {lm}{loc} .", "{np_def_col} {near} {lm}{loc} .",
              "colour"),
    _template("seen_near", "{np_cc} can be seen {near} {lm}{loc} .",
              "{appear_verb} {np_cc} {near} {lm}{loc} .", "count", "colour"),
    _template("scene_with", "{with} {np_full} .", "{with} {np_full} .", "count", "size", "colour"),
    _template("landmark_first", "{lm} is {inv_rel_np}{loc} .", "{lm} {inv_rel_np}{loc} .",
              "count", "colour", "relation"),
    _template("relation_first", "{rel} , there {be} {np_cs}{loc} .", "{rel} {np_cs}{loc} .",
              "count", "size", "relation"),
    _template("participle", "{np_cc} {be} {participle} {rel}{loc} .", "{np_cc} {participle} {rel}{loc} .",
              "count", "colour", "relation"),
    _template("definite", "{np_def_size_col} {be} {rel}{loc} .", "{np_def_size_col} {rel}{loc} .",
              "size", "colour", "relation"),
)

TEMPLATES_BY_NAME: dict[str, Template] = {template.name: template for template in TEMPLATES}

#: Pseudo-template: one of the class's fixed scene-level sentences ("the airport is very large .").
SCENE_SENTENCE: str = "scene_sentence"
