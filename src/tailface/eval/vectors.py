"""Feature matrices as the protocols want them: finite float32 rows, L2-normalised."""

from __future__ import annotations

import numpy as np

from tailface.errors import ProtocolError


def checked_features(features, source: str = "features") -> np.ndarray:
    """``features`` as a C-contiguous float32 ``N x D`` array; :class:`ProtocolError` for a wrong
    shape, NaN/inf values or all-zero rows."""
    x = np.asarray(features)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ProtocolError(f"{source}: features must be a non-empty N x D matrix, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number):
        raise ProtocolError(f"{source}: features must be numbers, got dtype {x.dtype}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise ProtocolError(f"{source}: {len(rows)} feature rows hold NaN or inf (first rows: "
                            f"{rows[:5].tolist()})")
    zero = ~(x != 0).any(axis=1)
    if zero.any():
        rows = np.flatnonzero(zero)
        raise ProtocolError(f"{source}: {len(rows)} feature rows are all zero and cannot be "
                            f"normalised (first rows: {rows[:5].tolist()})")
    return x


def l2_normalize(features, source: str = "features") -> np.ndarray:
    """Checked features scaled to unit length (float32; the norm is taken in float64)."""
    x = checked_features(features, source)
    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
    return (x / norms[:, None]).astype(np.float32)
