"""Progress bars for the commands that can run for minutes: n of N, rate and time left, on stderr (tqdm).

A bar shows only where a person watches: when stderr is a terminal, or with ``--progress`` (a log file that
wants it anyway). ``--no-progress`` turns it off. Standard output keeps only the command's results, so
``manage.py report --format csv > out.csv`` stays clean whatever the bar does.

    progress = Progress.of(self, options)
    for order_id in progress.bar(ids, desc="Replaying", unit="order"):
        ...
        progress.note("order 250: BigCommerce did not answer")   # a line above the bar, not through it
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import IO, Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def add_progress_arguments(parser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="show a progress bar on stderr even when it is not a terminal",
    )
    group.add_argument(
        "--no-progress", dest="progress", action="store_false", help="never show a progress bar"
    )


def _raw(stream: Any) -> IO[str]:
    """The file under Django's OutputWrapper: the bar writes carriage returns, not whole lines."""
    return getattr(stream, "_out", stream)


def wanted(option: bool | None, stream: Any) -> bool:
    """``--progress`` / ``--no-progress`` when given, else whether the stream is a terminal."""
    if option is not None:
        return option
    isatty = getattr(_raw(stream), "isatty", None)
    return bool(isatty and isatty())


class Progress:
    def __init__(self, stream: Any, enabled: bool) -> None:
        self.file = _raw(stream)
        self.enabled = enabled
        self._bar: tqdm | None = None

    @classmethod
    def of(cls, command, options: dict[str, Any]) -> Progress:
        """For a management command: its stderr, its ``--progress``/``--no-progress`` option."""
        return cls(command.stderr, wanted(options.get("progress"), command.stderr))

    def bar(self, iterable: Iterable[T], *, desc: str, unit: str, total: int | None = None) -> Iterator[T]:
        """Iterate with a bar: n of N with an ETA when the total is known (``len`` or ``total``), else a count-up."""
        if total is None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        bar = tqdm(
            iterable,
            total=total,
            desc=desc,
            unit=f" {unit}s",
            file=self.file,
            disable=not self.enabled,
            dynamic_ncols=True,
            leave=True,
            mininterval=0.5,
        )
        self._bar = bar
        try:
            yield from bar
        finally:
            bar.close()
            self._bar = None

    def note(self, text: str, stream: Any = None) -> None:
        """Write a line (to ``stream``, default the bar's stream) without tearing the bar."""
        out = _raw(stream) if stream is not None else self.file
        if self._bar is not None and self.enabled:
            tqdm.write(text, file=out)
        else:
            out.write(text if text.endswith("\n") else text + "\n")
