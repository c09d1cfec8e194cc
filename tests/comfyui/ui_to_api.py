"""Converts a UI-format workflow (what users save, load and what the pack ships) into the API-format prompt that
``POST /prompt`` executes, using the server's ``/object_info``, as the web UI's ``app.graphToPrompt()`` does for
ordinary graphs. Lets headless tests run the shipped workflows without a browser.

Handles widget order (``input_order``), widgets converted to sockets, the extra ``control_after_generate`` value after
seed-like INTs, dict-style ``widgets_values``, muted (mode 2) and bypassed (mode 4) nodes, Reroute, PrimitiveNode and
Note/MarkdownNote. Not handled: subgraphs/group nodes and inputs added at run time by JS extensions.
"""

from __future__ import annotations

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
FRONTEND_ONLY = {"Note", "MarkdownNote", "PrimitiveNode", "Reroute"}
MUTED, BYPASSED = 2, 4


def _options(spec: list) -> dict:
    return spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}


def combo_options(spec: list) -> list:
    """A COMBO input's choices from /object_info: V1 nodes list them in place of the type, V3 nodes send "COMBO" with
    an ``options`` list."""
    return spec[0] if isinstance(spec[0], list) else _options(spec)["options"]


def _is_widget(spec: list) -> bool:
    if _options(spec).get("forceInput"):
        return False
    return isinstance(spec[0], list) or spec[0] in WIDGET_TYPES


def widget_names(info: dict) -> tuple[list[str], set[str]]:
    """Widget input names in ``widgets_values`` order, and the ones followed by a ``control_after_generate`` value."""
    names: list[str] = []
    with_control: set[str] = set()
    order = info.get("input_order") or {section: list(inputs) for section, inputs in info["input"].items()}
    for section in ("required", "optional"):
        for name in order.get(section, []):
            spec = info["input"][section][name]
            if not _is_widget(spec):
                continue
            names.append(name)
            if _options(spec).get("control_after_generate") or (spec[0] == "INT" and name in ("seed", "noise_seed")):
                with_control.add(name)
    return names, with_control


def convert(workflow: dict, object_info: dict) -> dict:
    """UI-format workflow -> API-format prompt ``{node_id: {"class_type", "inputs", "_meta"}}``."""
    nodes = {n["id"]: n for n in workflow["nodes"]}
    links = {link[0]: link for link in workflow["links"]}  # [id, origin_id, origin_slot, target_id, target_slot, type]

    def resolve(link_id: int) -> tuple | None:
        """Follow a link back through Reroutes and bypassed nodes to ``(node_id, slot)``, a constant, or nothing."""
        _, origin_id, origin_slot, _, _, link_type = links[link_id]
        source = nodes[origin_id]
        if source["type"] == "Reroute":
            upstream = source["inputs"][0].get("link")
            return resolve(upstream) if upstream is not None else None
        if source["type"] == "PrimitiveNode":
            return ("const", source["widgets_values"][0])
        if source.get("mode") == BYPASSED:  # passes through its first linked input of the same type
            for socket in source.get("inputs", []):
                if socket.get("link") is not None and socket.get("type") == link_type:
                    return resolve(socket["link"])
            return None
        if source.get("mode") == MUTED:
            return None
        return (str(origin_id), origin_slot)

    prompt = {}
    for node_id, node in sorted(nodes.items()):
        if node["type"] in FRONTEND_ONLY or node.get("mode") in (MUTED, BYPASSED):
            continue
        info = object_info.get(node["type"])
        if info is None:
            raise KeyError(f"node type {node['type']!r} (node {node_id}) is not installed on the server")
        inputs = {}
        values = node.get("widgets_values")
        names, with_control = widget_names(info)
        if isinstance(values, dict):  # some packs (VHS) serialise widgets by name
            inputs.update({k: v for k, v in values.items() if k in names or k != "videopreview"})
        elif isinstance(values, list):
            i = 0
            for name in names:
                if i >= len(values):
                    break
                inputs[name] = values[i]
                i += 2 if name in with_control else 1
        for socket in node.get("inputs", []):  # linked sockets, including widgets converted to sockets
            if socket.get("link") is None:
                continue
            source = resolve(socket["link"])
            name = socket.get("widget", {}).get("name", socket["name"])
            if source is None:
                inputs.pop(name, None)
            elif source[0] == "const":
                inputs[name] = source[1]
            else:
                inputs[name] = [source[0], source[1]]
        title = node.get("title", info.get("display_name", node["type"]))
        prompt[str(node_id)] = {"class_type": node["type"], "inputs": inputs, "_meta": {"title": title}}
    return prompt
