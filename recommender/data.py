"""Canonical interaction files: read, validate row by row, report what was refused.

==========  ==========================================================================
file        columns (optional in brackets)
==========  ==========================================================================
orders      user_id, store_id, [deal_id], ts, amount
reviews     user_id, store_id, ts, rating (1-5), [text]
deals       deal_id, store_id, title, discount_pct, starts_at, ends_at, [tags], [quota]
generic     user_id, store_id, [weight], [rating], [ts]   (the evaluate command's input)
stores      store_id, lat, lon, [category], [tags], [price_level], [rating]
==========  ==========================================================================

CSV (commas, or tabs when the header has tabs and no comma; UTF-8, a byte-order mark
ignored) or Parquet. ``ts`` and the deal window are ISO 8601 (UTC if no offset) or Unix time
(seconds, or milliseconds and finer, told apart by size). Problems are
reported as ``file:row: field: reason`` with ``row`` the 1-based data row, exactly like the
store catalogue's reports; strict mode refuses a file with any bad row.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

_MAX_ID = 128


@dataclass(frozen=True)
class RowProblem:
    file: str
    row: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.row}: {self.field}: {self.reason}"


@dataclass
class Report:
    file: str
    rows_read: int = 0
    rows_loaded: int = 0
    problems: list[RowProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self, limit: int = 50) -> str:
        lines = [
            f"{self.file}: read {self.rows_read} rows, loaded {self.rows_loaded}, "
            f"{self.rows_read - self.rows_loaded} bad rows"
        ]
        lines += [f"  {p}" for p in self.problems[:limit]]
        if len(self.problems) > limit:
            lines.append(f"  ... and {len(self.problems) - limit} more")
        return "\n".join(lines)


class DataError(ValueError):
    """A file refused whole; ``report`` lists the rows at fault."""

    def __init__(self, message: str, report: Report):
        super().__init__(message)
        self.report = report

    def __str__(self) -> str:
        return f"{self.args[0]}\n{self.report.summary()}"


# name -> (required columns, optional columns)
SCHEMAS = {
    "orders": (("user_id", "store_id", "ts", "amount"), ("deal_id",)),
    "reviews": (("user_id", "store_id", "ts", "rating"), ("text",)),
    "deals": (("deal_id", "store_id", "title", "discount_pct", "starts_at", "ends_at"), ("tags", "quota")),
    "interactions": (("user_id", "store_id"), ("weight", "rating", "ts")),
    "stores": (("store_id", "lat", "lon"), ("category", "tags", "price_level", "rating")),
}


def read_table(path, kind: str, *, strict: bool = False, known_stores=None) -> tuple[pd.DataFrame, Report]:
    """Read and validate one canonical file of ``kind`` (a key of ``SCHEMAS``)."""
    name = os.path.basename(str(path))
    report = Report(name)
    raw = _read(path, report)
    frame = validate(raw, kind, report, known_stores=known_stores)
    if strict and not report.ok:
        raise DataError(f"{name}: refused in strict mode", report)
    return frame, report


def every_row_timed(rows: pd.DataFrame) -> bool:
    """Whether every interaction row has a ``ts``: only then is anything ordered in time
    (the per-user splits, the recency features, ``most_recent``); otherwise none of it is."""
    return "ts" in rows and bool(rows["ts"].notna().all())


def _read(path, report: Report) -> pd.DataFrame:
    suffix = os.path.splitext(str(path).lower())[1]
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".csv", ".tsv", ".txt"):
            return pd.read_csv(
                path,
                sep="\t" if suffix == ".tsv" or _tab_separated(path) else ",",
                dtype=str,
                keep_default_na=False,
                encoding="utf-8-sig",  # UTF-8, and a spreadsheet's byte-order mark is not in the first column's name
                encoding_errors="strict",
            )
    except FileNotFoundError:
        raise DataError(f"{report.file}: no such file", report) from None
    except Exception as exc:  # noqa: BLE001 - parsers raise many types on corrupt input
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise DataError(f"{report.file}: cannot read file: {first}", report) from exc
    raise DataError(f"{report.file}: unsupported file type {suffix!r}; use .csv or .parquet", report)


def _tab_separated(path) -> bool:
    """A header with tabs and no comma: public data sets ship tab-separated .txt and .csv."""
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        head = fh.readline()
    return "\t" in head and "," not in head


def validate(raw: pd.DataFrame, kind: str, report: Report, known_stores=None) -> pd.DataFrame:
    """Canonical rows of ``raw``; every refused value goes to ``report``."""
    required, optional = SCHEMAS[kind]
    raw = raw.rename(columns=lambda c: str(c).strip().lower())
    missing = [c for c in required if c not in raw.columns]
    if missing:
        raise DataError(
            f"{report.file}: missing column(s) {', '.join(missing)}; found "
            f"{', '.join(map(str, raw.columns)) or 'none'}",
            report,
        )
    n = len(raw)
    report.rows_read = n
    bad = np.zeros(n, dtype=bool)
    rows = np.arange(1, n + 1)

    def flag(mask, col, reason, keep: bool = False):
        mask = np.asarray(mask, dtype=bool)
        for r in rows[mask]:
            why = reason if isinstance(reason, str) else reason(int(r) - 1)
            report.problems.append(RowProblem(report.file, int(r), col, why + ("; left blank" if keep else "")))
        if not keep:
            bad[mask] = True

    out = pd.DataFrame(index=raw.index)
    for col in [c for c in required + optional if c in raw.columns]:
        if col in ("user_id", "store_id", "deal_id", "title", "text", "tags", "category"):
            text = _text(raw[col])
            if col in required:
                flag(text == "", col, f"missing {col}")
            if col.endswith("_id"):
                flag(text.str.len() > _MAX_ID, col, f"longer than {_MAX_ID} characters")
            out[col] = text.where(text != "", None) if col not in required else text
        elif col in ("ts", "starts_at", "ends_at"):
            out[col] = _times(raw[col], col, flag, required=col in required)
        else:
            bounds = _KIND_RANGES.get((kind, col), _RANGES[col])
            if (kind, col) in _BLANKED:
                out[col] = _blanked_numbers(raw[col], col, flag, bounds)
            else:
                out[col] = _numbers(raw[col], col, flag, *bounds, required=col in required)
    if known_stores is not None and "store_id" in out:
        unknown = ~out["store_id"].isin(known_stores) & (out["store_id"] != "")
        flag(unknown, "store_id", lambda i: f"unknown store {out['store_id'].iat[i]!r}")
    if kind == "deals":
        flag(out["ends_at"] <= out["starts_at"], "ends_at", "ends_at must be after starts_at")
        flag(out["deal_id"].duplicated(keep="first") & (out["deal_id"] != ""), "deal_id", "duplicate deal_id")
    if kind == "stores":
        flag(out["store_id"].duplicated(keep="first") & (out["store_id"] != ""), "store_id", "duplicate store_id")
    good = out.loc[~bad].reset_index(drop=True)
    report.rows_loaded = len(good)
    return good


# column -> (low, high, whole numbers only)
_RANGES = {
    "amount": (0, 1e7, False),
    "rating": (0, 5, False),
    "discount_pct": (0, 100, False),
    "quota": (0, 1e9, True),
    "weight": (0, 1e9, False),
    "lat": (-90, 90, False),
    "lon": (-180, 180, False),
    "price_level": (1, 4, True),
}


# A store's rating and an evaluation row's come on the source's own scale (Foursquare's
# venues 0-10, most review sites 1-5): the ranker shrinks and splits them, it does not read
# stars. Refusing a store rated 8.6 dropped every visit to it. A review's rating stays 0-5,
# which ``training.REVIEW_FACTOR`` reads as stars.
_KIND_RANGES = {("stores", "rating"): (0, 1e6, False), ("interactions", "rating"): (0, 1e6, False)}
# A store's descriptive numbers that are unusable (a -1 "no rating", a price level 0) are
# reported and left blank: the store and every visit to it stay, its rating unknown.
_BLANKED = {("stores", "rating"), ("stores", "price_level")}


def _text(series: pd.Series) -> pd.Series:
    return series.astype(object).where(series.notna(), "").map(str).str.strip().astype(object)


def _numbers(series, col, flag, lo, hi, whole, required):
    text = _text(series)
    values = pd.to_numeric(text.where(text != "", None), errors="coerce").to_numpy(dtype=float)
    present = text != ""
    flag(present & np.isnan(values), col, lambda i: f"{col} {str(series.iat[i])[:40]!r} is not a number")
    if required:
        flag(~present, col, f"missing {col}")
    ok = ~np.isnan(values)
    flag(
        ok & ((values < lo) | (values > hi) | ~np.isfinite(values)),
        col,
        lambda i: f"{col} {values[i]} out of range [{lo:g}, {hi:g}]",
    )
    if whole:
        flag(
            ok & np.isfinite(values) & (values != np.round(values)),
            col,
            lambda i: f"{col} {values[i]} is not a whole number",
        )
    return values


def _unix_times(number: np.ndarray, rows: np.ndarray, index) -> pd.Series:
    """``number`` at ``rows`` as Unix times (UTC, to the microsecond), elsewhere NaT."""
    v = number[rows]
    size = np.abs(v)
    us = np.select([size < 1e11, size < 1e14, size < 1e17], [v * 1e6, v * 1e3, v], v / 1e3)
    stamps = np.full(len(v), np.datetime64("NaT"), "datetime64[us]")
    seconds = (size < 1e11) & (v == np.round(v))  # whole seconds exactly, not through a float product
    stamps[seconds] = v[seconds].astype(np.int64).astype("datetime64[s]").astype("datetime64[us]")
    rest = ~seconds & (np.abs(us) < 9e18)  # int64 microseconds, with room
    stamps[rest] = np.round(us[rest]).astype(np.int64).astype("datetime64[us]")
    out = pd.Series(pd.NaT, index=index, dtype="datetime64[us, UTC]")
    out.iloc[np.flatnonzero(rows)] = pd.to_datetime(stamps, utc=True)
    return out


def _blanked_numbers(series, col, flag, bounds) -> np.ndarray:
    """``_numbers`` for a field whose bad values are reported and left unknown (NaN), the
    row kept."""
    blank = np.zeros(len(series), dtype=bool)

    def keep(mask, col, reason):
        blank[np.asarray(mask, dtype=bool)] = True
        flag(mask, col, reason, keep=True)

    lo, hi, whole = bounds
    values = _numbers(series, col, keep, lo, hi, whole, required=False)
    return np.where(blank, np.nan, values)


def _times(series, col, flag, required):
    text = _text(series)
    given = text.where(text != "", None)
    parsed = pd.to_datetime(given, errors="coerce", utc=True, format="ISO8601")
    # Unix time where a value is a number and not ISO 8601: public check-in and review sets
    # often give it so. Its unit follows from its size, as a time after 1973 needs: seconds
    # below 1e11 (the year 5138 in seconds), then milliseconds, microseconds, nanoseconds.
    number = pd.to_numeric(given, errors="coerce").to_numpy(dtype=float)
    unix = parsed.isna().to_numpy() & np.isfinite(number)
    if unix.any():
        parsed = parsed.dt.as_unit("us").where(~unix, _unix_times(number, unix, series.index))
    present = (text != "").to_numpy()
    flag(
        present & parsed.isna().to_numpy(),
        col,
        lambda i: f"{col} {str(series.iat[i])[:40]!r} is neither an ISO 8601 time nor a Unix time",
    )
    if required:
        flag(~present, col, f"missing {col}")
    return parsed
