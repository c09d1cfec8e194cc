"""The shipped example inputs (origin and licence in NOTICE.txt): what the command line animates by default."""

from pathlib import Path

EXAMPLE_IMAGE = Path(__file__).with_name("portrait.png")
EXAMPLE_AUDIO = Path(__file__).with_name("speech.wav")
