"""What tools/make_template_media.py makes for the shipped templates is in the repository and current: a 512x512
thumbnail beside every template, and screenshots after a run (docs/screenshots/, listed in its README.md) that
show every template and, for a grouped one, every group whole; no screenshot the list does not name. The files only:
the browser tests check what the real ComfyUI serves and shows."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import pytest

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((REPO / "workflows").glob("*.json"))
SHOTS = REPO / "docs" / "screenshots"
SCREEN_WIDTH = 1920
# one line of docs/screenshots/README.md: ![<template> after a run: groups <title>, <title>](<file>)
LISTED = re.compile(r"^!\[(?P<name>\w+) after a run(?:: groups (?P<groups>[^\]]+))?\]\((?P<file>[\w.-]+\.png)\)$")


def _listed() -> dict[str, list[tuple[str, list[str]]]]:
    """{template: [(screenshot file, the groups it shows whole)]} from docs/screenshots/README.md."""
    listed: dict[str, list[tuple[str, list[str]]]] = {}
    for line in (SHOTS / "README.md").read_text(encoding="utf-8").splitlines():
        if m := LISTED.match(line):
            groups = m["groups"].split(", ") if m["groups"] else []
            listed.setdefault(m["name"], []).append((m["file"], groups))
    return listed


def test_the_list_line_reads_back():
    m = LISTED.match("![joyvasa_two_faces after a run: groups Speech and motion, Face A](joyvasa_two_faces.png)")
    assert m and m["name"] == "joyvasa_two_faces" and m["groups"] == "Speech and motion, Face A"
    assert LISTED.match("![joyvasa_animal after a run](joyvasa_animal.png)")["groups"] is None


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.stem)
def test_every_template_has_its_thumbnail_and_screenshots(workflow):
    thumb = cv2.imread(str(workflow.with_suffix(".jpg")))
    assert thumb is not None, f"{workflow.stem}.jpg missing: run tools/make_template_media.py"
    assert thumb.shape == (512, 512, 3) and thumb.std() > 10
    shots = _listed().get(workflow.stem)
    assert shots, f"no screenshot of {workflow.stem} in docs/screenshots/README.md: run tools/make_template_media.py"
    assert shots[0][0] == f"{workflow.stem}.png", "the first screenshot is the saved view, named as the template"
    groups = {g["title"] for g in json.loads(workflow.read_text(encoding="utf-8")).get("groups", [])}
    shown = {g for _, seen in shots for g in seen}
    assert shown == groups, f"groups never shown whole: {sorted(groups - shown)}; not in the template: " \
                            f"{sorted(shown - groups)}"
    for file, _ in shots:
        image = cv2.imread(str(SHOTS / file))
        assert image is not None, f"docs/screenshots/{file} is listed but missing"
        assert image.shape[1] == SCREEN_WIDTH and image.std() > 10, file


def test_no_screenshot_is_left_unlisted():
    listed = {file for shots in _listed().values() for file, _ in shots}
    assert {p.name for p in SHOTS.glob("*.png")} == listed
    assert set(_listed()) == {p.stem for p in WORKFLOWS}
