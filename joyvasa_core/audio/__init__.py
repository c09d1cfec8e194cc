"""Speech in: decoding to mono at ``SAMPLE_RATE`` (``io.py``) and the HuBERT encoder (``encoder.py``)."""

SAMPLE_RATE = 16_000  # Hz: the rate HuBERT was trained at, and so the rate of every waveform the library handles
