"""Compile an emotion model for TensorFlow-free scoring: ``python -m pipelines.export model=<uri or folder>``.

Writes ``artifacts/compiled/`` (LiteRT float32 and int8 graphs, the folded head, a
manifest with provenance and parity) into the model, or into a copy of it:

- ``model`` a local folder and ``out`` null: in place (e.g. the shipped model);
- ``model`` a ``runs:/`` or ``models:/`` URI and ``out`` null: into the MLflow model in the
  tracking store (its logged model's artifacts, tagged ``emotify.compiled``), so every later
  load of that run or version, the champion included, scores with the compiled runtime;
- ``out`` set: into a copy at ``out``.

Parity with the Keras path is measured on the bundled sample and, when the data root
holds it, on the full FER-2013 PrivateTest, and recorded in the manifest.
Exit codes: 0 done, 2 bad model or option (one line), 130 interrupted.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig

from pipelines._common import CONFIG_PATH, config_errors_exit_2, exit_on_error

log = logging.getLogger("emotify.export")


def export(cfg: DictConfig) -> Path:
    """Resolve ``cfg.model``, copy it when asked, compile it (a store URI: into the store); returns the model folder."""
    import shutil

    from emotify_ml.exceptions import ConfigError
    from emotify_ml.models import resolve_model

    resolved = resolve_model(cfg.model, kind="emotion", tracking_uri=cfg.tracking.uri)
    options = dict(variants=list(cfg.variants), quantization=cfg.quantization, data_root=cfg.data_root,
                   parity_full=cfg.parity_full, n_representative=int(cfg.n_representative), seed=int(cfg.seed))
    if cfg.out is None and str(cfg.model).startswith(("models:/", "runs:/")):
        return compile_into_store(resolved, tracking_uri=cfg.tracking.uri, **options)
    folder = Path(resolved.local_dir)
    if cfg.out is not None and Path(cfg.out).resolve() != folder.resolve():
        out = Path(cfg.out)
        if out.resolve() in folder.resolve().parents or (out.is_dir() and any(out.iterdir())
                                                         and not (out / "MLmodel").is_file()):
            raise ConfigError(f"out={cfg.out!r} is a folder that holds other things (or the model itself); give a "
                              "new folder, or a model folder written by an earlier export to replace")
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(resolved.local_dir, out)
        folder = out
    compile_folder(folder, resolved, **options)
    return folder


def compile_into_store(resolved, *, tracking_uri=None, **options) -> Path:
    """Compile a model of the tracking store in a scratch copy and store the artifact inside the MLflow model
    (:func:`emotify_ml.registry.store_compiled`); returns the model as loads now find it (downloaded anew, compiled).

    Nothing is stored unless the compile finished.
    """
    import shutil
    import tempfile

    from emotify_ml.exceptions import ModelError
    from emotify_ml.models import resolve_model
    from emotify_ml.registry import store_compiled, stored_model_id
    from emotify_ml.runtime import has_compiled

    stored_model_id(resolved)  # a model that cannot hold it is refused before the conversion
    with tempfile.TemporaryDirectory(prefix="emotify-export-") as scratch:
        copy = Path(scratch) / "model"
        shutil.copytree(resolved.local_dir, copy)
        store_compiled(resolved, compile_folder(copy, resolved, **options), tracking_uri=tracking_uri)
    stored = resolve_model(resolved.uri, kind="emotion", tracking_uri=tracking_uri)
    if not has_compiled(stored.local_dir):
        raise ModelError(f"{resolved.uri} was compiled and stored, but a fresh load of it has no compiled artifact "
                         f"({stored.local_dir}); is the tracking store {tracking_uri!r} the one the model lives in?")
    log.info("%s now holds its compiled artifact in the tracking store", resolved.uri)
    return Path(stored.local_dir)


def compile_folder(folder, resolved, *, variants=("int8", "float32"), quantization="dynamic", data_root=None,
                   parity_full=True, n_representative=400, seed=0) -> Path:
    """Compile a local emotion model folder, with parity on the bundled sample (and the full PrivateTest when present).

    Also called by ``pipelines.ship_model``. ``resolved`` (a ResolvedModel) is the source recorded in the manifest.
    """
    import json

    from emotify_ml.data.fer2013 import load_fer2013
    from emotify_ml.labels import TEST
    from emotify_ml.runtime.export import compile_model, default_data_root

    sample = load_fer2013()
    parity_sets = {"sample_all": (sample.images, sample.labels)}
    root = Path(data_root) if data_root else default_data_root()
    if parity_full and root.resolve() != Path(sample.root).resolve():
        test = load_fer2013(root).split(TEST)
        if len(test):
            parity_sets[f"fer2013_{TEST}"] = (test.images, test.labels)
    dest = compile_model(folder, variants=list(variants), quantization=quantization, data_root=root,
                         n_representative=n_representative, seed=seed, parity_sets=parity_sets,
                         source={"uri": resolved.uri, "name": resolved.name, "version": resolved.version})
    manifest = json.loads((dest / "manifest.json").read_text())
    for variant, info in manifest["variants"].items():
        figures = "; ".join(f"{name}: agreement {p['label_agreement']:.4f}, accuracy {p['accuracy_keras']:.4f} -> "
                            f"{p['accuracy_compiled']:.4f} (n={p['n']})"
                            for name, p in manifest["parity"][variant].items())
        log.info("%s: %s (%d bytes); %s", variant, dest / info["file"], info["bytes"], figures)
    return dest


@config_errors_exit_2
@hydra.main(config_path=CONFIG_PATH, config_name="export", version_base="1.3")
@exit_on_error
def main(cfg: DictConfig) -> None:
    from emotify_ml.mlflow_runs import check_tracking_uri

    check_tracking_uri(cfg.tracking.uri)
    export(cfg)


if __name__ == "__main__":
    main()
