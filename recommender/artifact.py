"""Model artifacts: one versioned folder, plain arrays and JSON, checksummed.

    <root>/<version>/model.npz   factors, biases, feature matrices (np.savez, no pickle)
    <root>/<version>/vocab.json  id mappings and feature vocabularies
    <root>/<version>/meta.json   format, version, hyperparameters, blend, data fingerprint,
                                 metrics, and the sha256 of the two files above

``load`` refuses a folder whose format is unknown or whose files do not match their
checksums, so a half-copied or tampered artifact is never served.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from datetime import UTC, datetime

import numpy as np
import scipy.sparse as sp

from .blend import Blend
from .features import FeatureConfig, FeatureSpace
from .training import TrainedModel

FORMAT = "o2o-lightfm/1"
_FILES = ("model.npz", "vocab.json")


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
        meta = {
            **trained.meta,
            "format": FORMAT,
            "version": version,
            "created_at": created.isoformat(),
            "blend": trained.blend.to_dict(),
            "features": trained.space.config.to_dict(),
            "sha256": {name: _sha256(os.path.join(tmp, name)) for name in _FILES},
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
    try:
        with open(os.path.join(path, "meta.json")) as fh:
            meta = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path}: no readable meta.json ({exc})") from None
    if meta.get("format") != FORMAT:
        raise ArtifactError(f"{path}: format {meta.get('format')!r} is not {FORMAT!r}; retrain with this version")
    for name in _FILES:
        want = meta.get("sha256", {}).get(name)
        file = os.path.join(path, name)
        if not os.path.exists(file) or _sha256(file) != want:
            raise ArtifactError(f"{path}: {name} is missing or does not match its checksum")
    with open(os.path.join(path, "vocab.json")) as fh:
        vocab = json.load(fh)
    with np.load(os.path.join(path, "model.npz"), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    config = FeatureConfig(**meta["features"])
    space = FeatureSpace.from_vocabulary(
        config, vocab, _unsparse("item_matrix", arrays), _unsparse("user_matrix", arrays)
    )
    return TrainedModel(
        space=space,
        item_embeddings=arrays["item_embeddings"],
        item_biases=arrays["item_biases"],
        user_embeddings=arrays["user_embeddings"],
        user_biases=arrays["user_biases"],
        blend=Blend(**meta["blend"]),
        meta=meta,
    )


def versions(root: str) -> list[str]:
    """Complete artifact versions under ``root``, oldest first (names sort by time)."""
    if not os.path.isdir(root):
        return []
    return sorted(
        v for v in os.listdir(root) if not v.startswith(".") and os.path.exists(os.path.join(root, v, "meta.json"))
    )


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
