import math

import numpy as np
import pytest

from geo_index.geodesy import EARTH_RADIUS_M, chord_for_distance, haversine_m, to_unit_xyz


def test_one_degree_of_meridian():
    assert haversine_m(0, 0, 1, 0) == pytest.approx(EARTH_RADIUS_M * math.pi / 180, rel=1e-12)


def test_equator_across_antimeridian_is_short():
    # 0.002 degrees of equator, not 359.998.
    assert haversine_m(0, 179.999, 0, -179.999) == pytest.approx(EARTH_RADIUS_M * math.radians(0.002), rel=1e-9)


def test_antipodes_and_poles():
    assert haversine_m(90, 0, -90, 0) == pytest.approx(math.pi * EARTH_RADIUS_M, rel=1e-12)
    # At a pole, longitude means nothing.
    assert haversine_m(90, 10, 90, -170) == pytest.approx(0, abs=1e-6)


def test_helsinki_tallinn_reference():
    # Independent closed form (spherical law of cosines) on the same sphere.
    a, b = (60.1699, 24.9384), (59.4370, 24.7536)
    p1, p2 = map(math.radians, (a[0], b[0]))
    dl = math.radians(b[1] - a[1])
    ref = EARTH_RADIUS_M * math.acos(math.sin(p1) * math.sin(p2) + math.cos(p1) * math.cos(p2) * math.cos(dl))
    assert haversine_m(*a, *b) == pytest.approx(ref, rel=1e-9)
    assert 80_000 < ref < 83_000


def test_chord_matches_unit_vectors():
    p, q = to_unit_xyz([60.0, 60.01], [25.0, 25.02])
    d = haversine_m(60.0, 25.0, 60.01, 25.02)
    assert np.linalg.norm(p - q) == pytest.approx(chord_for_distance(d), rel=1e-9)
