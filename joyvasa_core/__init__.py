"""JoyVASA + LivePortrait as a plain PyTorch library.

Nothing in this package imports ComfyUI: the node adapters in ``nodes/`` call into it, never the other way,
so the command line, the tests and other tools can drive every stage directly.
"""

__version__ = "0.1.0"
