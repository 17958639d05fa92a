"""Catalogue loading: every format, a projected CRS, polygons, and files with bad rows."""

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from geo_index import LoadError, load_catalogue
from tests.support.stores import hand_placed


def _gdf(frame=None, crs="EPSG:4326"):
    frame = hand_placed() if frame is None else frame
    gdf = gpd.GeoDataFrame(
        frame.drop(columns=["lat", "lon"]), geometry=gpd.points_from_xy(frame["lon"], frame["lat"]), crs="EPSG:4326"
    )
    return gdf.to_crs(crs)


def _check_same_stores(loaded, atol=1e-9):
    ref = hand_placed().set_index("store_id").sort_index()
    got = loaded.set_index("store_id").sort_index()
    assert list(got.index) == list(ref.index)
    np.testing.assert_allclose(got["lat"], ref["lat"], atol=atol)
    np.testing.assert_allclose(got["lon"], ref["lon"], atol=atol)
    assert got.loc["n100", "opening_hours"] == "Mo-Su 08:00-20:00"
    assert got.loc["n100", "tags"] == ("coffee", "wifi")
    assert got.loc["n250", "price_level"] == 3


@pytest.mark.parametrize(
    "suffix,writer",
    [
        (".csv", lambda f, p: f.to_csv(p, index=False)),
        (".parquet", lambda f, p: f.to_parquet(p, index=False)),
        (".geojson", lambda f, p: _gdf(f).to_file(p, driver="GeoJSON")),
        (".gpkg", lambda f, p: _gdf(f).to_file(p, driver="GPKG")),
        # dBase cuts names to 10 characters, as a partner's Shapefile would have them.
        (".shp", lambda f, p: _gdf(f).rename(columns=lambda c: c[:10]).to_file(p, driver="ESRI Shapefile")),
        (".geoparquet", lambda f, p: _gdf(f).to_parquet(p)),
    ],
)
def test_every_format_loads_the_same_stores(tmp_path, suffix, writer):
    path = tmp_path / f"stores{suffix}"
    writer(hand_placed(), path)
    frame, report = load_catalogue(path)
    assert report.ok, report.summary()
    _check_same_stores(frame)


def test_projected_crs_is_reprojected(tmp_path):
    # ETRS-TM35FIN, Finland's national grid; only the Helsinki stores fit its zone.
    finnish = hand_placed().iloc[:6]
    path = tmp_path / "tm35.gpkg"
    _gdf(finnish, crs="EPSG:3067").to_file(path, driver="GPKG")
    frame, report = load_catalogue(path)
    assert any("EPSG:3067" in n for n in report.notes)
    np.testing.assert_allclose(frame.sort_values("store_id")["lat"], finnish.sort_values("store_id")["lat"], atol=1e-7)


def test_polygons_reduce_to_a_point_inside(tmp_path):
    frame = hand_placed().iloc[:2]
    gdf = _gdf(frame)
    gdf.loc[0, "geometry"] = shapely.Polygon([(24.93, 60.17), (24.94, 60.17), (24.94, 60.18), (24.93, 60.18)])
    path = tmp_path / "buildings.geojson"
    gdf.to_file(path, driver="GeoJSON")
    loaded, report = load_catalogue(path)
    row = loaded.set_index("store_id").loc["n100"]
    assert 60.17 < row["lat"] < 60.18 and 24.93 < row["lon"] < 24.94
    assert any("representative point" in n for n in report.notes)


BAD_CSV = """store_id,merchant_id,name,category,lat,lon,opening_hours,timezone,price_level,rating
ok1,m,Good,cafe,60.1,24.9,Mo-Fr 08:00-16:00,,2,4.5
nolat,m,No lat,cafe,,24.9,,,,
far,m,Too far north,cafe,95,24.9,,,,
word,m,Word lon,cafe,60.1,east,,,,
ok1,m,Duplicate,cafe,60.1,24.9,,,,
hours,m,Bad hours,cafe,60.1,24.9,Mon - Fri 11am - 11pm,,,
zone,m,Bad zone,cafe,60.1,24.9,,Mars/Olympus,,
price,m,Bad price,cafe,60.1,24.9,,,7,
rating,m,Bad rating,cafe,60.1,24.9,,,,-1
ok2,m,Also good,bar,60.2,24.95,,,,
"""

EXPECTED = {
    (2, "lat"),
    (3, "lat"),
    (4, "lon"),
    (5, "store_id"),
    (6, "opening_hours"),
    (7, "timezone"),
    (8, "price_level"),
    (9, "rating"),
}


def test_bad_rows_strict_refuses_the_file(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(BAD_CSV)
    with pytest.raises(LoadError) as err:
        load_catalogue(path, strict=True)
    problems = err.value.report.problems
    assert {(p.row, p.field) for p in problems} == EXPECTED
    assert all(p.file == "bad.csv" and p.reason for p in problems)
    assert "first at row 1" in next(p.reason for p in problems if p.field == "store_id")


def test_bad_rows_lenient_loads_the_rest(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(BAD_CSV)
    frame, report = load_catalogue(path, strict=False)
    assert list(frame["store_id"]) == ["ok1", "ok2"]
    assert report.rows_read == 10 and report.rows_loaded == 2
    assert {(p.row, p.field) for p in report.problems} == EXPECTED
    assert "bad.csv:3: lat:" in report.summary()


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("latin1.csv", "store_id,name,category,lat,lon\nx,Caf\xe9,cafe,1,2\n".encode("latin-1"), "cannot read"),
        ("cut.geojson", b'{"type": "FeatureCollection", "features": [{"type": "Fea', "cannot read"),
        ("cols.csv", b"id,title\n1,x\n", "missing required column"),
        ("stores.xlsx", b"PK\x03\x04", "unsupported file type"),
        ("empty.parquet", b"not parquet at all", "cannot read"),
    ],
)
def test_unreadable_files_are_refused_whole(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(LoadError, match=message):
        load_catalogue(path, strict=False)


def test_default_merchant_and_timezone(tmp_path):
    path = tmp_path / "partner.csv"
    pd.DataFrame(
        {"id": ["a"], "name": ["A"], "category": ["Coffee Shop"], "latitude": [1.0], "longitude": [2.0]}
    ).to_csv(path, index=False)
    frame, _ = load_catalogue(path, default_timezone="Asia/Tokyo", default_merchant_id="m-partner")
    row = frame.iloc[0]
    assert (row["merchant_id"], row["timezone"], row["category"]) == ("m-partner", "Asia/Tokyo", "coffee_shop")
