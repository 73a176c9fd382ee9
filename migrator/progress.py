"""Progress display: what planning found, then one bar per workload with items, bytes, rate and
ETA. The base reporter shows nothing (tests, pipes, CI logs)."""

from __future__ import annotations

from collections import Counter

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text


def human_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(count) < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} TB"


def plan_lines(by_workload: dict[str, Counter], verb: str = "planned") -> list[str]:
    return [
        f"{workload:<9} {verb}: {c['new']} new, {c['changed']} changed, {c['removed']} removed at source, "
        f"{c['unchanged']} unchanged ({c['bytes']:,} bytes)"
        for workload, c in sorted(by_workload.items())
    ]


class _BytesColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(human_bytes(task.fields.get("bytes", 0)), style="cyan")


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} items/s" if speed else "", style="magenta")


class ProgressReporter:
    """What the job reports to."""

    shows_plan = False

    def planning(self, upn: str, workload: str) -> None: ...

    def planned(self, by_workload: dict[str, Counter]) -> None: ...

    def start(self, totals: dict[str, int]) -> None: ...

    def advance(self, workload: str, nbytes: int) -> None: ...

    def stop(self) -> None: ...


NullProgress = ProgressReporter


class RichProgress(ProgressReporter):
    shows_plan = True

    def __init__(self, console: Console) -> None:
        self.console = console
        self._progress = Progress(
            TextColumn("{task.description:<9}"), BarColumn(), MofNCompleteColumn(), _BytesColumn(), _RateColumn(), TimeRemainingColumn(),
            console=console, transient=False,
        )
        self._tasks: dict[str, int] = {}
        self._planning = Progress(SpinnerColumn(), TextColumn("{task.description}"), console=console, transient=True)
        self._planning_task: int | None = None

    def planning(self, upn: str, workload: str) -> None:
        if self._planning_task is None:
            self._planning.start()
            self._planning_task = self._planning.add_task("")
        self._planning.update(self._planning_task, description=f"planning {upn}: {workload}")

    def planned(self, by_workload: dict[str, Counter]) -> None:
        if self._planning_task is not None:
            self._planning.stop()
            self._planning_task = None
        for line in plan_lines(by_workload):
            self.console.print(line, highlight=False)

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
