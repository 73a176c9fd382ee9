"""Progress display: one bar per workload with items, bytes, rate and ETA; silent when not a terminal."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.text import Text


def human_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(count) < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} TB"


class _BytesColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(human_bytes(task.fields.get("bytes", 0)), style="cyan")


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} items/s" if speed else "", style="magenta")


class ProgressReporter:
    """What the copier reports to; the base class shows nothing."""

    def start(self, totals: dict[str, int]) -> None: ...

    def advance(self, workload: str, nbytes: int) -> None: ...

    def stop(self) -> None: ...


class RichProgress(ProgressReporter):
    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("{task.description:<9}"), BarColumn(), MofNCompleteColumn(), _BytesColumn(), _RateColumn(), TimeRemainingColumn(),
            console=console, transient=False,
        )
        self._tasks: dict[str, int] = {}

    def start(self, totals: dict[str, int]) -> None:
        for workload, total in totals.items():
            self._tasks[workload] = self._progress.add_task(workload, total=total, bytes=0)
        self._progress.start()

    def advance(self, workload: str, nbytes: int) -> None:
        task_id = self._tasks.get(workload)
        if task_id is not None:
            task = self._progress.tasks[task_id]
            self._progress.update(task_id, advance=1, bytes=task.fields.get("bytes", 0) + nbytes)

    def stop(self) -> None:
        self._progress.stop()


NullProgress = ProgressReporter  # reports nowhere: tests, --quiet and non-terminals
