"""The store catalogue: read any common GIS file, reproject, validate row by row.

Canonical fields (README "Store catalogue"):

==============  ========  =======================================================
field           required  meaning
==============  ========  =======================================================
store_id        yes       unique id, text
merchant_id     yes       owner; a load may supply a default for the whole file
name            yes       display name
category        yes       lower-case slug, e.g. ``cafe``, ``clothes``
lat, lon        yes       WGS84 degrees (or a geometry column in any CRS)
timezone        yes       IANA name; defaults to the configured zone
price_level     no        1-4
rating          no        0-5
opening_hours   no        OpenStreetMap ``opening_hours`` syntax
tags            no        ``|``-separated words
popularity      no        non-negative number, used by ``sort=popularity``
==============  ========  =======================================================
"""

from __future__ import annotations

import os
import re
import warnings

import numpy as np
import pandas as pd

from .hours import hours_problem, timezone_problem
from .report import LoadError, LoadReport

REQUIRED = ("store_id", "merchant_id", "name", "category", "lat", "lon")
OPTIONAL = ("timezone", "price_level", "rating", "opening_hours", "tags", "popularity")
COLUMNS = REQUIRED + OPTIONAL

_ALIASES = {
    "id": "store_id",
    "latitude": "lat",
    "longitude": "lon",
    "lng": "lon",
    "price": "price_level",
    "hours": "opening_hours",
    "tz": "timezone",
    "merchant": "merchant_id",
    # Shapefile (dBase) cuts field names to 10 characters.
    "merchant_i": "merchant_id",
    "opening_ho": "opening_hours",
    "price_leve": "price_level",
}
_CATEGORY_RE = re.compile(r"^[a-z0-9_]{1,64}$")
_MAX_ID_LEN = 128
_MAX_TEXT_LEN = 512

VECTOR_SUFFIXES = (".geojson", ".json", ".gpkg", ".shp", ".zip", ".fgb", ".gml", ".kml")
PARQUET_SUFFIXES = (".parquet", ".geoparquet", ".pq")
CSV_SUFFIXES = (".csv", ".tsv", ".txt")


def load_catalogue(
    path, *, strict: bool = True, default_timezone: str = "UTC", default_merchant_id: str | None = None
) -> tuple[pd.DataFrame, LoadReport]:
    """Read, reproject and validate a store file.

    Parameters
    ----------
    path : str or os.PathLike
        GeoJSON, GeoPackage, Shapefile, (Geo)Parquet, or CSV with ``lat``/``lon`` columns.
    strict : bool
        If True any bad row refuses the whole file (``LoadError``); if False the good rows are
        returned and the report lists the others.
    default_timezone : str
        IANA zone for rows without ``timezone``.
    default_merchant_id : str, optional
        Owner for rows without ``merchant_id``.

    Returns
    -------
    (DataFrame, LoadReport)
        Canonical columns only, one row per accepted store.
    """
    name = os.path.basename(str(path))
    report = LoadReport(file=name)
    raw = read_store_file(path, report)
    frame = validate_stores(raw, report, default_timezone=default_timezone, default_merchant_id=default_merchant_id)
    if strict and not report.ok:
        raise LoadError(f"{name}: refused in strict mode ({len(report.bad_rows)} bad rows)", report)
    return frame, report


def read_store_file(path, report: LoadReport) -> pd.DataFrame:
    """Any supported file as a DataFrame of text-ish columns plus numeric ``lat``/``lon``."""
    suffix = os.path.splitext(str(path).lower())[1]
    if not os.path.exists(path):
        raise LoadError(f"{report.file}: no such file", report)
    try:
        # GDAL reports broken geometry as warnings; they become notes in the report, not noise.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            frame = _read_any(path, suffix, report)
        for w in caught[:20]:
            report.notes.append(f"reader warning: {str(w.message)[:200]}")
        if frame is not None:
            return frame
    except LoadError:
        raise
    except (UnicodeDecodeError, ValueError, OSError, pd.errors.ParserError, RuntimeError) as exc:
        # pyogrio raises DataSourceError (a RuntimeError) and friends for broken files.
        raise LoadError(f"{report.file}: cannot read file: {_first_line(exc)}", report) from exc
    except Exception as exc:  # noqa: BLE001 - third-party readers raise anything on corrupt input
        raise LoadError(f"{report.file}: cannot read file: {type(exc).__name__}: {_first_line(exc)}", report) from exc
    raise LoadError(
        f"{report.file}: unsupported file type {suffix!r}; use one of "
        f"{', '.join(CSV_SUFFIXES + PARQUET_SUFFIXES + VECTOR_SUFFIXES)}",
        report,
    )


def _read_any(path, suffix: str, report: LoadReport):
    if suffix in CSV_SUFFIXES:
        return _normalise_columns(_read_csv(path, suffix))
    if suffix in PARQUET_SUFFIXES:
        return _normalise_columns(_read_parquet(path, report))
    if suffix in VECTOR_SUFFIXES:
        import geopandas as gpd

        return _normalise_columns(_points_from_geometry(gpd.read_file(path), report))
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _read_csv(path, suffix: str) -> pd.DataFrame:
    sep = "\t" if suffix == ".tsv" else ","
    # Everything as text: numbers are parsed below so that each bad cell is reported.
    return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, encoding="utf-8", encoding_errors="strict")


def _read_parquet(path, report: LoadReport) -> pd.DataFrame:
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    if b"geo" in meta:
        import geopandas as gpd

        return _points_from_geometry(gpd.read_parquet(path), report)
    return pd.read_parquet(path)


def _points_from_geometry(gdf, report: LoadReport) -> pd.DataFrame:
    """Reduce any geometry to one WGS84 point per row; lat/lon NaN where there is none."""
    geom = gdf.geometry
    if gdf.crs is None:
        report.notes.append("no CRS in file: coordinates taken as WGS84 lon/lat")
    non_point = ~geom.geom_type.isin(["Point"]) & geom.notna() & ~geom.is_empty
    if non_point.any():
        report.notes.append(f"{int(non_point.sum())} non-point geometries reduced to a representative point")
        # In the source CRS, where planar geometry is meaningful; reprojected afterwards.
        geom = geom.where(~non_point, geom.representative_point())
    if gdf.crs is not None and not gdf.crs.equals("EPSG:4326"):
        report.notes.append(f"reprojected from {gdf.crs.to_string()} to EPSG:4326")
        geom = geom.set_crs(gdf.crs, allow_override=True).to_crs("EPSG:4326")
    empty = geom.isna() | geom.is_empty
    frame = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
    good = geom[~empty]
    frame["lon"] = np.nan
    frame["lat"] = np.nan
    frame.loc[~empty.to_numpy(), "lon"] = good.x.to_numpy()
    frame.loc[~empty.to_numpy(), "lat"] = good.y.to_numpy()
    return frame


def _normalise_columns(frame: pd.DataFrame) -> pd.DataFrame:
    renamed = {}
    for col in frame.columns:
        key = str(col).strip().lower()
        renamed[col] = _ALIASES.get(key, key)
    frame = frame.rename(columns=renamed)
    return frame.loc[:, ~frame.columns.duplicated()].reset_index(drop=True)


def validate_stores(
    raw: pd.DataFrame, report: LoadReport, *, default_timezone: str = "UTC", default_merchant_id: str | None = None
) -> pd.DataFrame:
    """Canonical, validated rows of ``raw``; every refused value is added to ``report``.

    Vectorised: a million rows validate in seconds, and only bad rows cost Python time.
    """
    n = len(raw)
    report.rows_read = n
    missing = [c for c in ("store_id", "name", "category", "lat", "lon") if c not in raw.columns]
    if missing:
        raise LoadError(
            f"{report.file}: missing required column(s) {', '.join(missing)}; "
            f"columns found: {', '.join(map(str, raw.columns)) or 'none'}",
            report,
        )
    extra = sorted(set(map(str, raw.columns)) - set(COLUMNS))
    if extra:
        report.notes.append(f"ignored columns: {', '.join(extra[:20])}")
    rows = np.arange(1, n + 1)
    bad = np.zeros(n, dtype=bool)

    def flag(mask, field, reason):
        mask = np.asarray(mask, dtype=bool)
        for r in rows[mask]:
            report.add(int(r), field, reason if isinstance(reason, str) else reason(int(r) - 1))
        bad[mask] = True

    out = pd.DataFrame(index=raw.index)
    for col in ("store_id", "name", "category", "merchant_id"):
        out[col] = _text(raw[col]) if col in raw.columns else pd.Series([""] * n, dtype=object)
    if default_merchant_id:
        out.loc[out["merchant_id"] == "", "merchant_id"] = default_merchant_id
    flag(out["store_id"] == "", "store_id", "missing store_id")
    flag(out["store_id"].str.len() > _MAX_ID_LEN, "store_id", f"longer than {_MAX_ID_LEN} characters")
    dup = out["store_id"].duplicated(keep="first") & (out["store_id"] != "")
    first_row = {sid: i + 1 for i, sid in reversed(list(enumerate(out["store_id"])))} if dup.any() else {}
    flag(
        dup,
        "store_id",
        lambda i: f"duplicate store_id {out['store_id'].iat[i]!r} (first at row {first_row[out['store_id'].iat[i]]})",
    )
    flag(out["merchant_id"] == "", "merchant_id", "missing merchant_id (or give a default merchant)")
    flag(out["name"] == "", "name", "missing name")
    flag(out["name"].str.len() > _MAX_TEXT_LEN, "name", f"longer than {_MAX_TEXT_LEN} characters")
    out["category"] = out["category"].str.lower().str.replace(r"[\s\-]+", "_", regex=True)
    flag(
        ~out["category"].str.match(_CATEGORY_RE),
        "category",
        lambda i: f"category {out['category'].iat[i]!r} is not a slug of a-z, 0-9 and _ (1-64 chars)",
    )

    for axis, limit in (("lat", 90.0), ("lon", 180.0)):
        values, unparsed = _numbers(raw[axis])
        flag(unparsed, axis, lambda i, a=axis: f"{a} {str(raw[a].iat[i])[:40]!r} is not a number")
        nan = np.isnan(values) & ~unparsed
        flag(nan, axis, f"missing {axis}")
        rng = np.isfinite(values) & (np.abs(values) > limit) | np.isinf(values)
        flag(rng, axis, lambda i, a=axis, v=values, lim=limit: f"{a} {v[i]} out of range [-{lim}, {lim}]")
        out[axis] = values

    tz = _text(raw["timezone"]) if "timezone" in raw.columns else pd.Series([""] * n, dtype=object)
    tz = tz.where(tz != "", default_timezone)
    for zone in pd.unique(tz):
        problem = timezone_problem(zone)
        if problem:
            flag((tz == zone).to_numpy(), "timezone", problem)
    out["timezone"] = tz

    out["price_level"] = _optional_number(raw, "price_level", flag, 1, 4, integer=True)
    out["rating"] = _optional_number(raw, "rating", flag, 0, 5)
    out["popularity"] = _optional_number(raw, "popularity", flag, 0, 1e12)
    out["popularity"] = out["popularity"].fillna(0.0)

    hours = _text(raw["opening_hours"]) if "opening_hours" in raw.columns else pd.Series([""] * n, dtype=object)
    for expr in pd.unique(hours):
        if expr:
            problem = hours_problem(expr)
            if problem:
                flag((hours == expr).to_numpy(), "opening_hours", f"{problem} in {expr[:60]!r}")
    out["opening_hours"] = hours.where(hours != "", None)
    out["tags"] = _tags(raw["tags"]) if "tags" in raw.columns else [()] * n

    good = out.loc[~bad, list(COLUMNS)].reset_index(drop=True)
    report.rows_loaded = len(good)
    return good


def _text(series: pd.Series) -> pd.Series:
    """Stripped text, "" for missing; vectorised (pandas string ops), object dtype out."""
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        text = series.astype(object).where(series.notna(), "").astype(str)
    else:
        text = series.astype(object).where(series.notna(), "").map(str, na_action="ignore")
    return text.str.strip().astype(object)


def _numbers(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Float values, and a mask of cells that hold something that is not a number."""
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return series.to_numpy(dtype=np.float64, na_value=np.nan), np.zeros(len(series), dtype=bool)
    text = _text(series)
    values = pd.to_numeric(text.where(text != "", None), errors="coerce").to_numpy(dtype=np.float64)
    unparsed = np.isnan(values) & (text != "").to_numpy() & ~text.str.lower().isin(["nan"]).to_numpy()
    return values, unparsed


def _optional_number(raw, col, flag, lo, hi, integer=False) -> pd.Series:
    n = len(raw)
    if col not in raw.columns:
        return pd.Series(np.full(n, np.nan))
    values, unparsed = _numbers(raw[col])
    flag(unparsed, col, lambda i: f"{col} {str(raw[col].iat[i])[:40]!r} is not a number")
    present = ~np.isnan(values)
    out_of_range = present & ((values < lo) | (values > hi) | ~np.isfinite(values))
    flag(out_of_range, col, lambda i: f"{col} {values[i]} out of range [{lo}, {hi}]")
    if integer:
        fractional = present & ~out_of_range & (values != np.round(values))
        flag(fractional, col, lambda i: f"{col} {values[i]} is not a whole number")
    return pd.Series(np.where(present & ~out_of_range, values, np.nan))


def _tags(series: pd.Series) -> list[tuple[str, ...]]:
    def split(v):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return ()
        if isinstance(v, (list, tuple, np.ndarray)):
            items = v
        else:
            items = re.split(r"[|;]", str(v))
        return tuple(t for t in (str(i).strip().lower() for i in items) if t)

    # Tag strings repeat a lot: split each distinct one once.
    codes, uniques = pd.factorize(
        series.map(
            lambda v: (
                v if isinstance(v, str) else ("|".join(map(str, v)) if isinstance(v, (list, tuple, np.ndarray)) else v)
            )
        ),
        use_na_sentinel=True,
    )
    parsed = [split(u) for u in uniques]
    return [parsed[c] if c >= 0 else () for c in codes]
