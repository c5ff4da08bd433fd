"""Compiled inference: export a fitted emotion model to LiteRT graphs, and score with them without TensorFlow.

:mod:`emotify_ml.runtime.export` (needs TensorFlow) writes ``artifacts/compiled/`` into an
MLflow emotion model; :func:`load_compiled` (TensorFlow-free) scores with it.
"""

from __future__ import annotations

from emotify_ml.runtime.compiled import (COMPILED_DIR, MANIFEST, VARIANTS, CompiledEmotionModel, compiled_dir,
                                         has_compiled, load_compiled, read_manifest)

__all__ = ["COMPILED_DIR", "MANIFEST", "VARIANTS", "CompiledEmotionModel", "compiled_dir", "has_compiled",
           "load_compiled", "read_manifest"]
