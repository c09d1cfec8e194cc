"""The batch's progress on the command line: one bar for the rows (done of total, failures, time left) and one line
per finished row; ``quiet`` silences both."""

from __future__ import annotations

import sys
from typing import Any


class BatchProgress:
    """Rows done of ``total``; ``finished`` prints the row's line above the bar."""

    def __init__(self, total: int, quiet: bool = False) -> None:
        self.total = total
        self.quiet = quiet
        self.failed = 0
        self.bar: Any = None
        if not quiet:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc="batch", unit="row", dynamic_ncols=True, leave=True, file=sys.stderr)
            self.bar.set_postfix_str("failed 0")

    def finished(self, line: str, ok: bool) -> None:
        if not ok:
            self.failed += 1
        if self.bar is None:
            return
        self.bar.write(line, file=sys.stderr)
        self.bar.set_postfix_str(f"failed {self.failed}", refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
