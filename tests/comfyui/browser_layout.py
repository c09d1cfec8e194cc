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
const view = {scale: s, offset: [dx, dy], left: rect.left, top: rect.top,
              sidebar: bar ? bar.getBoundingClientRect().right : 0, width: window.innerWidth,
              height: window.innerHeight};
return JSON.stringify({nodes, view, covered});
"""


def measure(browser) -> dict:
    """The open graph's node boxes, the view and the covered points (see ``MEASURE``)."""
    return json.loads(browser.js(MEASURE))


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

    def screen(x: float, y: float) -> tuple[float, float]:
        scale, (dx, dy) = view["scale"], view["offset"]
        return (x + dx) * scale + view["left"], (y + dy) * scale + view["top"]

    for n in nodes:
        x, y, w, h = n["bounds"]
        (left, top), (right, bottom) = screen(x, y), screen(x + w, y + h)
        if left <= view["sidebar"] or top < view["top"] or right > view["width"] or bottom > view["height"]:
            problems.append(f"{n['type']} {n['id']} is not wholly on screen: {left:.0f},{top:.0f} to "
                            f"{right:.0f},{bottom:.0f} in {view['width']}x{view['height']}")
    problems += [f"hidden under a panel: {c}" for c in result["covered"]]
    return problems
