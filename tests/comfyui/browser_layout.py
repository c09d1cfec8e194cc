"""What a user sees of a graph in the real web UI: every node's box, whether it lies over another one, whether it is
on screen right of the side bar, and what covers its title and corners. Shared by the browser tests."""

from __future__ import annotations

import json

# Page code: what the user sees at each node's title and corners, the canvas itself or some panel drawn over it
# ("<type> <id> <where>: <what covers it>" for each hidden point). With ``players`` the frontend's own preview
# players and images drawn over their node count as the canvas.
COVERED_POINTS = """
function coveredPoints(players) {
    const canvas = window.app.canvas;
    const rect = canvas.canvas.getBoundingClientRect();
    const [dx, dy] = canvas.ds.offset, s = canvas.ds.scale;
    const covered = [];
    for (const n of window.app.graph._nodes) {
        const [x, y, w, h] = n.getBounding();
        const points = {title: [x + w / 2, y + 15], "top left": [x + 2, y + 2], "top right": [x + w - 2, y + 2],
                        "bottom left": [x + 2, y + h - 2], "bottom right": [x + w - 2, y + h - 2]};
        for (const [where, [px, py]] of Object.entries(points)) {
            const el = document.elementFromPoint((px + dx) * s + rect.left, (py + dy) * s + rect.top);
            const seen = el && (el === canvas.canvas || (players && el.closest(".comfy-img-preview, .dom-widget")));
            if (!seen) covered.push(`${n.type} ${n.id} ${where}: ${el ? el.className || el.tagName : "off screen"}`);
        }
    }
    return covered;
}
"""

# Runs in the page: the open graph's nodes and the view, as JSON.
MEASURE = COVERED_POINTS + """
const canvas = window.app.canvas;
// the width a whole title takes, as the frontend's computeSize counts it (title bar height either side)
const titleWidth = (n) => window.LiteGraph.NODE_TITLE_HEIGHT * 1.33 +
    (window.LGraphCanvas._measureText?.(n.title, n.titleFontStyle) ?? n.title.length * 8.4);
const nodes = window.app.graph._nodes.map((n) => ({
    id: n.id, type: n.type, title: n.title, bounds: Array.from(n.getBounding()), size: Array.from(n.size),
    needs: [titleWidth(n), n.computeSize()[1]],
}));
const bar = document.querySelector(".side-tool-bar-container");
const rect = canvas.canvas.getBoundingClientRect();
const [dx, dy] = canvas.ds.offset, s = canvas.ds.scale;
const covered = coveredPoints(true);
const groups = window.app.graph._groups.map((g) => ({title: g.title, bounds: [...g.pos, ...g.size]}));
const view = {scale: s, offset: [dx, dy], left: rect.left, top: rect.top,
              sidebar: bar ? bar.getBoundingClientRect().right : 0, width: window.innerWidth,
              height: window.innerHeight};
return JSON.stringify({nodes, view, covered, groups});
"""


# Runs in the page: moves the view (at its scale) by a canvas offset, as dragging the canvas does.
PAN = """
const canvas = window.app.canvas;
canvas.ds.offset[0] += arguments[0];
canvas.ds.offset[1] += arguments[1];
canvas.setDirty(true, true);
"""


def measure(browser) -> dict:
    """The open graph's node boxes, its groups, the view and the covered points (see ``MEASURE``)."""
    return json.loads(browser.js(MEASURE))


def _inside(inner: list[float], outer: list[float]) -> bool:
    return (outer[0] <= inner[0] and outer[1] <= inner[1] and inner[0] + inner[2] <= outer[0] + outer[2]
            and inner[1] + inner[3] <= outer[1] + outer[3])


def group_problems(browser, result: dict, settle=lambda: None) -> list[str]:
    """The rule for a graph larger than one screen, laid out in ComfyUI groups: every node inside one group, no
    group over another, and each group reads as one screen does: with the view moved (at the saved 100%) so the
    group's top left is where the first group's is at the saved view, the whole group is on screen and its nodes
    pass ``layout_problems`` (measured once ``settle()`` returns: what comes into view has loaded). The saved view
    shows the first group so. Leaves the view where it was."""
    groups, problems = result["groups"], []
    for n in result["nodes"]:
        homes = [g["title"] for g in groups if _inside(n["bounds"], g["bounds"])]
        if len(homes) != 1:
            problems.append(f"{n['type']} {n['id']} is inside {len(homes)} groups, not one: {homes}")
    for i, a in enumerate(groups):
        problems += [f"group {a['title']!r} overlaps group {b['title']!r}" for b in groups[i + 1 :]
                     if _overlap(a["bounds"], b["bounds"])]
    for g in groups:
        shift = shift_to(groups, g)
        browser.js(PAN, *shift)
        settle()
        seen = measure(browser)
        browser.js(PAN, -shift[0], -shift[1])
        mine = [n for n in seen["nodes"] if _inside(n["bounds"], g["bounds"])]
        ids = {f"{n['type']} {n['id']} " for n in mine}
        seen = {**seen, "nodes": mine, "covered": [c for c in seen["covered"] if any(c.startswith(i) for i in ids)]}
        problems += [f"in group {g['title']!r}: {p}" for p in layout_problems(seen)]
        problems += [f"group {g['title']!r} is not wholly on screen: {p}"
                     for p in _off_screen(seen["view"], [{"type": "group", "id": g["title"], "bounds": g["bounds"]}])]
    return problems


def shift_to(groups: list[dict], group: dict) -> tuple[float, float]:
    """The ``PAN`` that moves ``group`` (at the saved 100%) to where the first group is at the saved view: how a
    user pans to a group, and how ``group_problems`` measures it."""
    first, bounds = groups[0]["bounds"], group["bounds"]
    return first[0] - bounds[0], first[1] - bounds[1]


def groups_on_screen(result: dict) -> list[str]:
    """The titles of the groups wholly on screen, right of the side bar, at ``result``'s view."""
    return [g["title"] for g in result["groups"]
            if not _off_screen(result["view"], [{"type": "group", "id": g["title"], "bounds": g["bounds"]}])]


def problems_at_saved_view(browser, settle=lambda: None) -> list[str]:
    """``layout_problems`` for a graph without groups, ``group_problems`` for one with them."""
    result = measure(browser)
    return group_problems(browser, result, settle) if result["groups"] else layout_problems(result)


def _overlap(a: list[float], b: list[float]) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def layout_problems(result: dict) -> list[str]:
    """Everything a user would find wrong at the current view: a node cut short, one node over another, a node off
    screen or under the side bar, a title or corner hidden under a panel. Empty when the layout reads."""
    view, nodes = result["view"], result["nodes"]
    problems = []
    if view["scale"] != 1:
        problems.append(f"the view is at {view['scale']:.0%}, not 100%")
    # widths: the title whole (the frontend's computeSize asks any player for the node's width + 104 px, whatever
    # the width: not a need); heights: every widget, image and player shown
    for n in nodes:
        if n["size"][0] < n["needs"][0] - 1:
            problems.append(f"{n['type']} {n['id']}'s title {n['title']!r} is cut: {n['size'][0]} of "
                            f"{n['needs'][0]:.0f} px")
        if n["size"][1] < n["needs"][1] - 1:
            problems.append(f"{n['type']} {n['id']} is cut: {n['size'][1]} px tall, needs {n['needs'][1]:.0f}")
    for i, a in enumerate(nodes):
        for b in nodes[i + 1 :]:
            if _overlap(a["bounds"], b["bounds"]):
                problems.append(f"{a['type']} {a['id']} overlaps {b['type']} {b['id']}")

    problems += _off_screen(view, nodes)
    problems += [f"hidden under a panel: {c}" for c in result["covered"]]
    return problems


def _off_screen(view: dict, boxes: list[dict]) -> list[str]:
    """The boxes not wholly on screen right of the side bar at ``view``."""

    def screen(x: float, y: float) -> tuple[float, float]:
        scale, (dx, dy) = view["scale"], view["offset"]
        return (x + dx) * scale + view["left"], (y + dy) * scale + view["top"]

    problems = []
    for n in boxes:
        x, y, w, h = n["bounds"]
        (left, top), (right, bottom) = screen(x, y), screen(x + w, y + h)
        if left <= view["sidebar"] or top < view["top"] or right > view["width"] or bottom > view["height"]:
            problems.append(f"{n['type']} {n['id']} is not wholly on screen: {left:.0f},{top:.0f} to "
                            f"{right:.0f},{bottom:.0f} in {view['width']}x{view['height']}")
    return problems
