"""JoyVASA Live: offers the graph's models and face on ComfyUI's own server as a live page (``/joyvasa/live/``),
where a browser streams the microphone and gets the talking face back (``joyvasa_core.live.server``)."""

from __future__ import annotations

from aiohttp import web
from server import PromptServer

from ..joyvasa_core.live.server import LiveHub, live_routes
from ..joyvasa_core.live.source import (
    DEFAULT_CHUNK_FRAMES,
    DEFAULT_LOOKAHEAD_FRAMES,
    DEFAULT_RATE,
    LIVE_BLINK_MODES,
    LIVE_BLINKS,
    live_options,
    live_source,
    one_face,
    source_name,
)
from ..joyvasa_core.validate import CLI_CFG_SCALE, WEB_CFG_SCALE, bounds
from .memory import on_device
from .schema import Face, JoyVASANode, LivePortrait, MotionModel, io

PREFIX = "/joyvasa"
HUB = LiveHub()


def register_routes(routes: web.RouteTableDef) -> None:
    """Adds the live page's routes to ComfyUI's route table (it serves them under ``/joyvasa`` and ``/api/joyvasa``)."""
    for route in live_routes(HUB, PREFIX):
        routes.route(route.method, route.path)(route.handler)


class JoyVASALive(JoyVASANode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return cls.schema(inputs=[
            LivePortrait.Input("liveportrait", tooltip="The LivePortrait networks (LivePortrait Loader)."),
            MotionModel.Input("motion_model", tooltip="The JoyVASA motion generator (Motion Generator Loader)."),
            Face.Input("face", tooltip="The prepared face (Load Reference Face)."),
            io.Int.Input("image_index", default=0, min=0, max=4095, tooltip="Which image of a batched reference "
                         "talks."),
            io.Int.Input("seed", default=0, **bounds("seed"), tooltip="Noise seed of the motion (each session "
                         "starts from it)."),
            io.Float.Input("cfg_scale", default=WEB_CFG_SCALE, **bounds("cfg_scale"), step=0.1, tooltip="Audio "
                           f"guidance: {WEB_CFG_SCALE} (web demo) for humans, {CLI_CFG_SCALE} the command line's."),
            io.Int.Input("chunk_frames", default=DEFAULT_CHUNK_FRAMES, min=1, max=100, tooltip="Motion frames made "
                         "final per step (25 = 1 s): fewer answer sooner, more cost less per second of speech."),
            io.Int.Input("lookahead_frames", default=DEFAULT_LOOKAHEAD_FRAMES, min=0, max=100, tooltip="Speech (in "
                         "40 ms frames) a step waits for past the frames it makes final: shorter answers sooner, "
                         "longer follows the offline result more closely."),
            io.Boolean.Input("paste_back", default=True, tooltip="Paste the face back into the whole photo (off: the "
                             "512x512 crop)."),
            io.Combo.Input("blinks", options=list(LIVE_BLINK_MODES), default=LIVE_BLINKS, tooltip="Blink on a seeded "
                           "natural schedule while talking and while idle (off: only the blinks the motion makes)."),
            io.Float.Input("blink_rate", default=DEFAULT_RATE, **bounds("blink_rate"), step=0.5, tooltip="Blinks "
                           "per minute on average (people blink 15-20 times a minute)."),
        ], is_output_node=True, hidden=[io.Hidden.unique_id])

    @classmethod
    def execute(cls, liveportrait, motion_model, face, image_index, seed, cfg_scale, chunk_frames,
                lookahead_frames, paste_back, blinks, blink_rate) -> io.NodeOutput:
        with cls.errors():
            name = source_name(str(cls.hidden.unique_id))
            options, stream, blinking = live_options(face, seed, cfg_scale, paste_back, chunk_frames,
                                                     lookahead_frames, blinks, blink_rate)
            talking = one_face(face, on_device(liveportrait), image_index)
            source = live_source(lambda: on_device(liveportrait), lambda: on_device(motion_model), talking, options,
                                 stream, label=cls.display(), blinks=blinking)
            HUB.offer(name, source)
            path = f"{PREFIX}/live/?source={name}"
            return io.NodeOutput(ui={"text": [path], "joyvasa_live": [{"path": path, "source": name}]})


if getattr(PromptServer, "instance", None) is not None:  # None when the pack is imported outside a running server
    register_routes(PromptServer.instance.routes)
