"""Many videos in one run: a manifest of (portrait, speech, output, options) rows, each checked by the single job's
own plan before any model loads, run by one process (``local``) or by Ray actors (``ray_runner``) that keep the
networks loaded, with a report beside the outputs that a second run resumes from.

Files: ``manifest`` reads CSV / JSON Lines, ``rows`` turns rows into planned jobs, ``keys`` names the work that
repeats, ``worker`` runs rows on held models, ``report`` writes the report and decides what a rerun skips,
``progress`` draws the batch bar, ``command`` is the ``batch`` command line.
"""
