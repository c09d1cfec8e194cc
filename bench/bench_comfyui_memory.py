"""Peak memory of a real ComfyUI server rendering a long clip: Render Video (streams chunks into the mp4) against
Warp and Render (one IMAGE batch of every frame) into core Create Video + Save Video, side by side in one run.

The server runs the small test networks (the memory that grows with the clip is frames, not weights); each path
renders the same clip after a fresh peak (VmHWM reset), so the figures are the growth each path causes. Prints,
never asserts.

    .venv/bin/python bench/bench_comfyui_memory.py                 # 60 s of speech, pasted into a 1024x1024 photo
    .venv/bin/python bench/bench_comfyui_memory.py --seconds 10 --side 512
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "tests" / "comfyui")]

from comfyui_harness import make_base, start_server, stop  # noqa: E402
from fixture_support import fixture_dir  # noqa: E402
from model_folders import write_joyvasa, write_liveportrait  # noqa: E402
from render_prompts import (  # noqa: E402
    peak_rss_kb,
    render_prompt,
    reset_peak_rss,
    speech_frames,
    write_photo,
    write_speech,
)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60.0, help="speech length [60]")
    p.add_argument("--side", type=int, default=1024, help="photo side in pixels, frames are pasted back into it")
    p.add_argument("--batch-size", type=int, default=8)
    args = p.parse_args()
    fixtures = fixture_dir()
    with tempfile.TemporaryDirectory() as tmp:
        base = make_base(Path(tmp) / "base")
        write_liveportrait(base / "models", "official")
        write_joyvasa(base / "models")
        photo = write_photo(fixtures / "astronaut.png", args.side, Path(tmp) / "photo.png")
        speech = write_speech(fixtures / "speech_en_16k.wav", args.seconds, Path(tmp) / "speech.wav")
        server = start_server(base)
        try:
            names = server.upload(photo), server.upload(speech)
            pid = server.process.pid
            idle = peak_rss_kb(pid)
            rows = []
            for label, streaming in (("Render Video (streaming)", True), ("Warp and Render IMAGE path", False)):
                reset_peak_rss(pid)
                t0 = time.perf_counter()
                entry = server.run(render_prompt(*names, streaming=streaming, prefix=f"bench/{streaming}",
                                                 batch_size=args.batch_size), timeout=24 * 3600)
                seconds = time.perf_counter() - t0
                if entry["status"]["status_str"] != "success":
                    print(f"{label}: failed: {entry['status']}\n{server.log_tail()}")
                    return 1
                rows.append((label, peak_rss_kb(pid) / 1024, seconds))
                server.request("POST", "/free", {"free_memory": True})  # drop the cached outputs between paths
                time.sleep(3.0)
        finally:
            stop(server.process)
            (base / "custom_nodes" / server.pack_name).unlink(missing_ok=True)
    n = speech_frames(args.seconds)
    print(f"{args.seconds:g} s of speech = {n} frames at 25 fps, pasted into {args.side}x{args.side}; "
          f"server RSS before: {idle / 1024:.0f} MiB")
    print(f"{'path':32} {'peak RSS MiB':>13} {'wall s':>8}")
    for label, peak, seconds in rows:
        print(f"{label:32} {peak:13.0f} {seconds:8.1f}")
    print(f"IMAGE path / streaming peak: {rows[1][1] / rows[0][1]:.2f}x "
          f"(a float32 frame is {args.side * args.side * 12 / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
