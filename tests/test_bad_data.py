"""Malformed files: every one is refused with a LoadError/DataError or loaded with a report;
never another exception, never a partial index. A bad model artifact is refused and the
served one stays."""

import json
import os
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geo_index import LoadError, StoreIndex, load_catalogue
from recommender import ArtifactError, DataError, read_table
from tests.support import tiers

GOOD_CSV = (
    "store_id,merchant_id,name,category,lat,lon,opening_hours,price_level,rating\n"
    "a,m,A,cafe,60.1,24.9,Mo-Fr 08:00-16:00,2,4.5\nb,m,B,bar,60.2,24.95,,,\n"
)
GOOD_GEOJSON = json.dumps(
    {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [24.9, 60.1]},
                "properties": {"store_id": "a", "merchant_id": "m", "name": "A", "category": "cafe"},
            }
        ],
    }
)
ORDERS = "user_id,store_id,deal_id,ts,amount\nu1,a,,2026-06-01T10:00:00Z,12.5\nu2,b,,2026-06-02T10:00:00Z,3\n"


def _mutations():
    """Byte-level damage: truncation, garbage, wrong encodings, huge numbers, broken geometry."""
    return st.one_of(
        st.integers(0, len(GOOD_CSV)).map(lambda n: ("csv", GOOD_CSV[:n].encode())),
        st.binary(max_size=300).map(lambda b: ("csv", b)),
        st.sampled_from(["latin-1", "utf-16", "cp1252"]).map(lambda e: ("csv", GOOD_CSV.replace("A,", "Å,").encode(e))),
        st.sampled_from(["1e400", "-1e308", "nan", "inf", "99999999999999999999", "0x1A", "", "🙂"]).map(
            lambda v: ("csv", GOOD_CSV.replace("60.1", v).replace(",2,", f",{v},").encode())
        ),
        st.integers(0, len(GOOD_GEOJSON)).map(lambda n: ("geojson", GOOD_GEOJSON[:n].encode())),
        st.sampled_from(["[24.9]", "[]", '"x"', "[1e999, 1e999]", "[[24.9, 60.1]]", "null"]).map(
            lambda c: ("geojson", GOOD_GEOJSON.replace("[24.9, 60.1]", c).encode())
        ),
    )


@settings(max_examples=tiers.examples(120), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_mutations(), st.booleans())
def test_catalogue_loader_never_crashes(tmp_path, case, strict):
    kind, payload = case
    path = tmp_path / f"stores.{kind}"
    path.write_bytes(payload)
    try:
        frame, report = load_catalogue(path, strict=strict)
    except LoadError as exc:
        assert str(exc)  # refused whole, with a reason
        return
    # Loaded: every row is either in the frame or in the report, and the index builds.
    assert report.rows_loaded == len(frame) <= report.rows_read
    assert len(frame) + len(report.bad_rows) >= report.rows_read or report.rows_read == 0
    StoreIndex(frame)


@settings(max_examples=tiers.examples(80), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.one_of(
        st.integers(0, len(ORDERS)).map(lambda n: ORDERS[:n].encode()),
        st.binary(max_size=200),
        st.sampled_from(["1e400", "nan", "-5", "x", ""]).map(lambda v: ORDERS.replace("12.5", v).encode()),
    )
)
def test_interaction_loader_never_crashes(tmp_path, payload):
    path = tmp_path / "orders.csv"
    path.write_bytes(payload)
    try:
        frame, report = read_table(path, "orders")
    except DataError as exc:
        assert str(exc)
        return
    assert report.rows_loaded == len(frame)
    if len(frame):
        assert frame["amount"].between(0, 1e7).all()


def test_ratings_on_a_source_s_own_scale_keep_their_stores(tmp_path):
    """A store rated 8.6 of 10 (Foursquare's scale) is a store, not a bad row: refusing it
    dropped every visit to it. A review's stars stay 1-5, since its weight reads them."""
    (tmp_path / "stores.csv").write_text("store_id,lat,lon,rating\na,60.1,24.9,8.6\nb,60.2,24.8,4.1\n")
    stores, report = read_table(tmp_path / "stores.csv", "stores")
    assert report.ok and stores["rating"].tolist() == [8.6, 4.1]
    (tmp_path / "visits.csv").write_text("user_id,store_id,rating\nu,a,9\n")
    visits, report = read_table(tmp_path / "visits.csv", "interactions")
    assert report.ok and len(visits) == 1
    (tmp_path / "reviews.csv").write_text("user_id,store_id,ts,rating\nu,a,2026-01-01T00:00:00Z,8\n")
    reviews, report = read_table(tmp_path / "reviews.csv", "reviews")
    assert reviews.empty and "out of range [0, 5]" in report.summary()


@pytest.mark.parametrize(
    "name, body",
    [
        ("bom.csv", "\ufeffuser_id,store_id,ts\nu,a,1333476009\n"),  # a spreadsheet's export
        ("checkins.txt", "user_id\tstore_id\tts\nu\ta\t1333476009\n"),  # public sets' tab-separated text
        ("checkins.csv", "user_id\tstore_id\tts\nu\ta\t1333476009\n"),
    ],
)
def test_interaction_files_as_public_sets_ship_them(tmp_path, name, body):
    (tmp_path / name).write_text(body, encoding="utf-8")
    rows, report = read_table(tmp_path / name, "interactions")
    assert report.ok and rows[["user_id", "store_id"]].values.tolist() == [["u", "a"]]
    assert str(rows["ts"].iat[0]) == "2012-04-03 18:00:09+00:00"


def test_a_store_s_unusable_rating_or_price_is_blanked_not_the_store(tmp_path):
    """A -1 "no rating" or a price level 0 is reported and left unknown: refusing the store
    would drop every visit to it. A bad position still refuses it."""
    (tmp_path / "stores.csv").write_text(
        "store_id,lat,lon,rating,price_level\na,60.1,24.9,-1,0\nb,60.2,24.8,x,2\nc,95,24.8,4.2,2\n"
    )
    stores, report = read_table(tmp_path / "stores.csv", "stores")
    assert stores["store_id"].tolist() == ["a", "b"]
    assert stores["rating"].isna().all() and stores["price_level"].isna().tolist() == [True, False]
    summary = report.summary()
    assert "read 3 rows, loaded 2, 1 bad rows" in summary
    assert summary.count("left blank") == 3 and "lat 95.0 out of range" in summary


def test_bad_artifact_is_refused_and_the_served_model_stays(tmp_path):
    from app.storage.model_versions import ModelHolder
    from recommender import TrainConfig, save, train
    from tests.test_recommender import checkerboard

    stores, pairs = checkerboard(n_users=20, n_items=20, per_user=6)
    model = train(stores, pairs, None, TrainConfig(no_components=4, max_epochs=1, min_epochs=1), log=lambda m: None)
    root = tmp_path / "artifacts"
    save(model, str(root), version="v1")
    shutil.copytree(root / "v1", root / "v2")
    with open(root / "v2" / "model.npz", "r+b") as fh:  # one flipped byte
        fh.seek(100)
        byte = fh.read(1)
        fh.seek(100)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ArtifactError, match="checksum"):
        __import__("recommender").load(str(root / "v2"))
    holder = ModelHolder(str(root), 0.0, lambda ids: [])
    holder._load("v1")
    assert holder.version == "v1"
    assert holder._load("v2") is False and holder.version == "v1" and "v2" in holder.failed_versions
    meta = json.loads((root / "v1" / "meta.json").read_text())
    meta["format"] = "o2o-lightfm/999"
    os.makedirs(root / "v3")
    for f in ("model.npz", "vocab.json"):
        shutil.copy(root / "v1" / f, root / "v3" / f)
    (root / "v3" / "meta.json").write_text(json.dumps(meta))
    assert holder._load("v3") is False and holder.version == "v1"
