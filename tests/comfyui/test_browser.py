"""The real ComfyUI web UI (comfyui-frontend-package) in headless Chromium loads the pack's JS extension, and the
socket colours it sets are the ones the canvas draws with, before and after a colour-palette switch.

Needs Debian's chromium + chromium-driver and the frontend package (scripts/setup_comfyui.sh installs them, ~20 s).
``JOYVASA_COMFYUI_BROWSER=0`` skips this check (and that install); otherwise missing tools fail it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from comfyui_harness import free_port, frontend_version
from webdriver import Browser, require_browser

REPO = Path(__file__).resolve().parents[2]
EXTENSION = REPO / "web" / "js" / "joyvasa.js"

pytestmark = pytest.mark.comfyui

READ_COLOURS = """
const canvas = window.app.canvas;
return Object.fromEntries(arguments[0].map((t) => [t, [canvas.colourGetter.getConnectedColor(t),
                                                       window.LGraphCanvas.link_type_colors[t]]]));
"""


def test_web_ui_registers_extension_and_keeps_socket_colours(comfyui):
    require_browser(comfyui)
    expected = dict(re.findall(r'^\s+(JOYVASA_[A-Z_]+): "(#[0-9A-Fa-f]{6})"', EXTENSION.read_text(), re.MULTILINE))
    assert len(expected) == 8
    types = sorted(expected)
    with Browser(free_port()) as browser:
        browser.open(comfyui.url + "/")
        browser.wait_for("return !!(window.app && window.app.canvas && window.LiteGraph)", "the ComfyUI web app")
        assert browser.js("return window.__COMFYUI_FRONTEND_VERSION__") == frontend_version()  # the UI meant
        browser.wait_for("return window.app.extensions.some(e => e.name === 'JoyVASA.Sockets')", "JoyVASA.Sockets")
        assert browser.js(READ_COLOURS, types) == {t: [c, c] for t, c in expected.items()}

        setting = "window.app.extensionManager.setting"
        before = browser.js(f"return [{setting}.get('Comfy.ColorPalette'), window.LGraphCanvas.link_type_colors.IMAGE]")
        target = "light" if before[0] != "light" else "dark"
        browser.js_async(f"await {setting}.set('Comfy.ColorPalette', '{target}');")
        browser.wait_for(f"return window.LGraphCanvas.link_type_colors.IMAGE !== '{before[1]}'", "the palette switch")
        assert browser.js(READ_COLOURS, types) == {t: [c, c] for t, c in expected.items()}, "palette blanked ours"

        browser.screenshot(comfyui.base / "ui.png")
        ours = [m["message"] for m in browser.console() if m["level"] == "SEVERE" and "joyvasa" in m["message"].lower()]
        assert ours == [], ours
