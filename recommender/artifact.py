"""Model artifacts: one versioned folder, plain arrays and JSON, checksummed.

    <root>/<version>/model.npz   factors, biases, feature matrices (np.savez, no pickle)
    <root>/<version>/vocab.json  id mappings and feature vocabularies
    <root>/<version>/meta.json   format, version, hyperparameters, blend, data fingerprint,
                                 metrics, and the sha256 of every other file
    and, when the model has a second stage (``recommender.served``):
    <root>/<version>/second_stage.npz   its sources' arrays (np.savez, no pickle)
    <root>/<version>/second_stage.json  its user and store ids, settings, feature names
    <root>/<version>/ranker.txt         the LightGBM model in LightGBM's own text format

``load`` refuses a folder whose format is unknown or whose files do not match their
checksums, so a half-copied or tampered artifact is never served, and a second stage whose
features this code computes differently (``feature_probe``: the fitting code's features
of a fixed small world, kept in ``second_stage.npz``, against this code's).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from datetime import UTC, datetime

import numpy as np
import scipy.sparse as sp

from . import feature_probe, served
from .blend import Blend
from .features import FeatureConfig, FeatureSpace
from .sources import FEATURES
from .training import TrainedModel

#: /2 (2026-11-27): the second stage's neighbourhood features are scaled per user
#: (``sources._per_user_scales``); a ranker fitted on the raw sums would misread them.
#: /3 (2026-11-27): the second stage carries its feature probe (``feature_probe``), so a
#: later change of what a feature means refuses the model without a bump of its own.
FORMAT = "o2o-lightfm/3"
_FILES = ("model.npz", "vocab.json")
_STAGE_FILES = ("second_stage.npz", "second_stage.json", "ranker.txt")


class ArtifactError(ValueError):
    """The folder is not a loadable artifact; the message says why."""


def save(trained: TrainedModel, root: str, version: str | None = None) -> str:
    """Write ``trained`` under ``root``; returns the new folder. Written atomically (rename)."""
    created = datetime.now(UTC)
    fp = trained.meta.get("fingerprint", "nofp")[:8]
    version = version or f"{created:%Y%m%dT%H%M%S}-{fp}"
    os.makedirs(root, exist_ok=True)
    final = os.path.join(root, version)
    if os.path.exists(final):
        raise ArtifactError(f"{final} exists already; versions are immutable")
    tmp = tempfile.mkdtemp(prefix=f".{version}.", dir=root)
    try:
        arrays = {
            "item_embeddings": trained.item_embeddings,
            "item_biases": trained.item_biases,
            "user_embeddings": trained.user_embeddings,
            "user_biases": trained.user_biases,
        }
        arrays.update(_sparse("item_matrix", trained.space.item_matrix()))
        arrays.update(_sparse("user_matrix", trained.space.user_matrix()))
        # numpy's stub cannot tell these names from savez's own keywords (allow_pickle).
        np.savez(os.path.join(tmp, "model.npz"), **arrays)  # type: ignore[arg-type]
        with open(os.path.join(tmp, "vocab.json"), "w") as fh:
            json.dump(trained.space.vocabulary(), fh)
        files: tuple[str, ...] = _FILES
        if trained.second_stage is not None:
            _save_stage(trained.second_stage, tmp)
            files = _FILES + _STAGE_FILES
        meta = {
            **trained.meta,
            "format": FORMAT,
            "version": version,
            "created_at": created.isoformat(),
            "blend": trained.blend.to_dict(),
            "features": trained.space.config.to_dict(),
            "second_stage": trained.second_stage is not None,
            **({"probe_features": list(FEATURES)} if trained.second_stage is not None else {}),
            "sha256": {name: _sha256(os.path.join(tmp, name)) for name in files},
        }
        with open(os.path.join(tmp, "meta.json"), "w") as fh:
            json.dump(meta, fh, indent=2, default=str)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def load(path: str) -> TrainedModel:
    """Read and verify an artifact folder (arrays with ``allow_pickle=False``)."""
    meta = _meta(path)
    refusal = _refusal(path, meta)
    if refusal:
        raise ArtifactError(f"{path}: {refusal}")
    with open(os.path.join(path, "vocab.json")) as fh:
        vocab = json.load(fh)
    with np.load(os.path.join(path, "model.npz"), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    config = FeatureConfig(**meta["features"])
    space = FeatureSpace.from_vocabulary(
        config, vocab, _unsparse("item_matrix", arrays), _unsparse("user_matrix", arrays)
    )
    return TrainedModel(
        second_stage=_load_stage(path) if meta.get("second_stage") else None,
        space=space,
        item_embeddings=arrays["item_embeddings"],
        item_biases=arrays["item_biases"],
        user_embeddings=arrays["user_embeddings"],
        user_biases=arrays["user_biases"],
        blend=Blend(**meta["blend"]),
        meta=meta,
    )


def _save_stage(stage, folder: str) -> None:
    arrays, vocab, model_text = served.to_files(stage)
    arrays["feature_probe"] = feature_probe.values()  # what the features meant to the code that fitted it
    np.savez(os.path.join(folder, "second_stage.npz"), **arrays)
    with open(os.path.join(folder, "second_stage.json"), "w") as fh:
        json.dump(vocab, fh)
    with open(os.path.join(folder, "ranker.txt"), "w") as fh:
        fh.write(model_text)


def _load_stage(path: str):
    with np.load(os.path.join(path, "second_stage.npz"), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    with open(os.path.join(path, "second_stage.json")) as fh:
        vocab = json.load(fh)
    with open(os.path.join(path, "ranker.txt")) as fh:
        model_text = fh.read()
    return served.from_files(arrays, vocab, model_text)


def versions(root: str) -> list[str]:
    """Complete artifact versions under ``root``, oldest first (names sort by time)."""
    if not os.path.isdir(root):
        return []
    return sorted(
        v for v in os.listdir(root) if not v.startswith(".") and os.path.exists(os.path.join(root, v, "meta.json"))
    )


def current_versions(root: str) -> list[str]:
    """``versions`` that this code can serve: its ``FORMAT``, and features it computes as the
    fitting code did (``load`` refuses the others, and checks the checksums too)."""
    out = []
    for v in versions(root):
        path = os.path.join(root, v)
        try:
            if _refusal(path, _meta(path), checksums=False) is None:
                out.append(v)
        except ArtifactError:
            continue
    return out


def _refusal(path: str, meta: dict, checksums: bool = True) -> str | None:
    """Why this code must not serve the artifact at ``path``; None when it may."""
    if meta.get("format") != FORMAT:
        return f"format {meta.get('format')!r} is not {FORMAT!r}; retrain with this version"
    if checksums:
        for name in _FILES + (_STAGE_FILES if meta.get("second_stage") else ()):
            file = os.path.join(path, name)
            if not os.path.exists(file) or _sha256(file) != meta.get("sha256", {}).get(name):
                return f"{name} is missing or does not match its checksum"
    if meta.get("second_stage"):
        try:
            # Our own handle: np.load leaves its file open when the zip does not read.
            with open(os.path.join(path, "second_stage.npz"), "rb") as fh, np.load(fh, allow_pickle=False) as z:
                probe = z["feature_probe"]
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
            return f"second_stage.npz has no readable feature probe ({exc}); retrain with this version"
        why = feature_probe.differs(probe, meta.get("probe_features", ()))
        if why:
            return f"the model was fitted on other features than this code serves ({why}); retrain with this version"
    return None


def _meta(path: str) -> dict:
    try:
        with open(os.path.join(path, "meta.json")) as fh:
            return json.load(fh)
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path}: no readable meta.json ({exc})") from None


def _sparse(prefix: str, m: sp.csr_matrix) -> dict:
    m = m.tocsr()
    return {
        f"{prefix}_data": m.data,
        f"{prefix}_indices": m.indices,
        f"{prefix}_indptr": m.indptr,
        f"{prefix}_shape": np.array(m.shape, dtype=np.int64),
    }


def _unsparse(prefix: str, arrays: dict) -> sp.csr_matrix:
    return sp.csr_matrix(
        (arrays[f"{prefix}_data"], arrays[f"{prefix}_indices"], arrays[f"{prefix}_indptr"]),
        shape=tuple(arrays[f"{prefix}_shape"]),
    )


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
