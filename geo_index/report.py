"""Row-level load reports: nothing bad is dropped without saying where and why."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RowProblem:
    """One bad value: which file, which row (1-based data row), which field, and why."""

    file: str
    row: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.row}: {self.field}: {self.reason}"


@dataclass
class LoadReport:
    """What a load accepted and what it refused."""

    file: str
    rows_read: int = 0
    rows_loaded: int = 0
    problems: list[RowProblem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, row: int, field_name: str, reason: str) -> None:
        self.problems.append(RowProblem(self.file, row, field_name, reason))

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def bad_rows(self) -> set[int]:
        return {p.row for p in self.problems}

    def summary(self, limit: int = 50) -> str:
        head = (
            f"{self.file}: read {self.rows_read} rows, loaded {self.rows_loaded}, "
            f"{len(self.bad_rows)} rows with {len(self.problems)} problems"
        )
        lines = [head, *(f"  note: {n}" for n in self.notes)]
        lines += [f"  {p}" for p in self.problems[:limit]]
        if len(self.problems) > limit:
            lines.append(f"  ... and {len(self.problems) - limit} more")
        return "\n".join(lines)


class LoadError(ValueError):
    """A file was refused as a whole (strict mode, unreadable file, missing columns).

    ``report`` says which rows and fields were at fault.
    """

    def __init__(self, message: str, report: LoadReport):
        super().__init__(message)
        self.report = report

    def __str__(self) -> str:
        return f"{self.args[0]}\n{self.report.summary()}"
