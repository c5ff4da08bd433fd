"""Batch scoring of image and video archives, in-process (``engine="local"``) or on Spark (``engine="spark"``).

Both engines run the same code on the same units of work, so they write the same rows:

1. :func:`plan_work` lists the inputs (a folder, searched recursively, or a glob) as
   :class:`WorkItem` s: one per image, and one per *frame range* of each video (so a
   long video is spread over several workers).
2. :class:`BatchScorer` scores a list of images (their bytes) or one video range:
   decode (:mod:`emotify_ml.io.frames`) → detect, align and crop
   (:meth:`emotify_ml.scoring.FrameStep.locate`, the step of every app) → classify the
   crops of a whole batch in one call (:meth:`~emotify_ml.scoring.FrameStep.classify`) →
   one row per face (:data:`COLUMNS`).
3. :func:`score_batch` skips the files already in the output (keyed by path, size and
   modification time), runs the engine, and appends parquet part files to the output folder.

A file that cannot be decoded becomes one row with an ``error`` and no probabilities;
an image (or sampled video frame) without a face becomes one row with
``face_source = "none"``, so a re-run knows it was done.

Options travel as one :class:`BatchOptions` (a :class:`~emotify_ml.scoring.options.ScoringOptions`
with the batch settings) from the config to the engines:

>>> summary = score_batch("photos/", "scores/", engine="local")          # doctest: +SKIP
>>> summary = score_batch("videos/*.mp4", "scores/", engine="spark",     # doctest: +SKIP
...                       spark=SparkOptions(master="spark://head:7077"), frame_stride=5)
>>> pd.read_parquet("scores/")                                           # doctest: +SKIP

Nothing runs at import: Spark, MLflow and the model are touched only when called.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from emotify_ml.exceptions import DataNotFoundError, OutputError
from emotify_ml.io.frames import IMAGE_SUFFIXES, VIDEO_SUFFIXES, decode_image, read_video, video_frame_count
from emotify_ml.labels import EMOTIONS
from emotify_ml.models.resolve import ResolvedModel, resolve_model
from emotify_ml.scoring.options import ScoringOptions

log = logging.getLogger(__name__)

ENGINES = ("local", "spark")

FACE_SOURCES = ("detector", "whole_image", "none")
"""Values of the ``face_source`` column (null on an error row)."""

KEY_COLUMNS = ("path", "size", "mtime_ms")
"""What identifies a scored file: re-running skips a file whose key is already in the output."""

COLUMNS: dict[str, str] = {
    "path": "string", "size": "int64", "mtime_ms": "int64", "kind": "string",
    "frame": "Int64", "time_s": "float64", "face": "Int64", "face_source": "string",
    "x": "float64", "y": "float64", "w": "float64", "h": "float64", "det_score": "float64",
    **{name: "float64" for name in EMOTIONS},
    "label": "string", "model_uri": "string", "model_version": "string", "error": "string",
}
"""Output columns and their pandas dtypes.

``path`` the file (absolute), ``size`` bytes and ``mtime_ms`` modification time (ms since the
epoch): the file's key. ``kind`` ``image`` or ``video``. ``frame`` the video frame index (null
for images) and ``time_s`` its media time. ``face`` the face's number in its image or frame.
``face_source`` ``detector``, ``whole_image`` or ``none`` (nothing found: no probabilities).
``x, y, w, h`` the box in pixels (the whole image for ``whole_image``), ``det_score`` the
detector's confidence. One probability column per class (:data:`emotify_ml.labels.EMOTIONS`)
and ``label``, their arg-max. ``model_uri`` and ``model_version`` (registry version, or null).
``error`` why the file could not be scored (then every score column is null)."""


@dataclass(frozen=True)
class WorkItem:
    """One unit of work: an image, or the frames ``[start, stop)`` of a video (``stop`` None: to the end)."""

    path: str
    size: int
    mtime_ms: int
    kind: str
    start: int = 0
    stop: int | None = None


@dataclass
class BatchSummary:
    """What a :func:`score_batch` call did."""

    engine: str
    files: int = 0
    skipped: int = 0
    work_items: int = 0
    rows: int = 0
    faces: int = 0
    errors: int = 0
    seconds: float = 0.0
    faces_per_s: float = 0.0
    model_uri: str = ""
    model_version: str | None = None
    output: str = ""
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------------------------- inputs

def list_inputs(spec) -> list[Path]:
    """The image and video files named by ``spec``, sorted.

    Parameters
    ----------
    spec : str or path or list
        A file, a folder (searched recursively), a glob (``"clips/**/*.mp4"``), or a list of those.

    Raises
    ------
    DataNotFoundError
        Nothing matches, or nothing that matches is an image or a video.
    """
    specs = list(spec) if isinstance(spec, (list, tuple)) else [spec]
    found: set[Path] = set()
    for item in specs:
        text = os.path.expanduser(str(item))
        path = Path(text)
        if path.is_dir():
            candidates = (p for p in path.rglob("*") if p.is_file())
        elif path.is_file():
            candidates = [path]
        elif glob.has_magic(text):
            candidates = (Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
        else:
            raise DataNotFoundError(f"input {text!r} is neither a file, a folder nor a glob that matches anything")
        found.update(p.resolve() for p in candidates if p.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES)
    if not found:
        raise DataNotFoundError(f"input {spec!r} holds no image ({', '.join(IMAGE_SUFFIXES)}) "
                                f"or video ({', '.join(VIDEO_SUFFIXES)})")
    return sorted(found)


def file_key(path) -> tuple[str, int, int]:
    """``(path, size, mtime_ms)`` of a file: the key of :data:`KEY_COLUMNS` (mtime truncated to ms, as Spark gives it)."""
    st = os.stat(path)
    return str(path), int(st.st_size), int(st.st_mtime_ns // 1_000_000)


def plan_work(files, *, frame_stride: int = 1, frames_per_item: int = 600, done=frozenset()) -> list[WorkItem]:
    """Split files into work items, leaving out those whose key is in ``done``.

    Parameters
    ----------
    files : iterable of path
    frame_stride : int
        Score every ``frame_stride``-th video frame (frames 0, stride, 2*stride...).
    frames_per_item : int
        Video frames per work item (rounded up to a multiple of ``frame_stride``); the
        last range of a video runs to its end, whatever its frame count claims.
    done : set of (path, size, mtime_ms)
        Keys already in the output.
    """
    _check_positive(frame_stride=frame_stride, frames_per_item=frames_per_item)
    span = -(-frames_per_item // frame_stride) * frame_stride
    items = []
    for file in files:
        key = file_key(file)
        if key in done:
            continue
        if Path(file).suffix.lower() not in VIDEO_SUFFIXES:
            items.append(WorkItem(*key, "image"))
            continue
        n = video_frame_count(file)
        starts = list(range(0, n, span)) if n > span else [0]
        for k, start in enumerate(starts):
            items.append(WorkItem(*key, "video", start, None if k == len(starts) - 1 else start + span))
    return items


def done_keys(output) -> set[tuple[str, int, int]]:
    """Keys (:data:`KEY_COLUMNS`) of the files already in an output folder (empty when there is none)."""
    output = Path(output)
    if not output.is_dir() or not any(output.glob("*.parquet")):
        return set()
    try:
        table = pd.read_parquet(output, columns=list(KEY_COLUMNS))
    except Exception as exc:  # noqa: BLE001 - any pyarrow error: the folder is not ours
        raise OutputError(f"cannot read the existing output {str(output)!r} to resume: {exc}") from None
    return set(zip(table["path"].astype(str), table["size"].astype("int64"), table["mtime_ms"].astype("int64")))


# ----------------------------------------------------------------------------------------------- options

@dataclass
class SparkOptions:
    """Where and how the Spark engine runs.

    Parameters
    ----------
    master : str
        ``local[*]``, ``local[2]``, or a cluster URL (``spark://host:7077``, ``yarn``, ``k8s://...``).
    partitions : int, optional
        Image partitions (None: Spark's default parallelism x 4, at most one per batch).
    local_dir : str, optional
        Spark's scratch folder, warehouse and Derby home (None: a temporary folder, removed after).
    conf : dict
        More Spark settings (they win over the defaults of :func:`spark_session`).
    """

    master: str = "local[*]"
    partitions: int | None = None
    local_dir: str | None = None
    conf: dict[str, Any] = field(default_factory=dict)


@dataclass
class BatchOptions(ScoringOptions):
    """Everything a batch run needs, from the config to the engines: one typed object.

    The scoring fields (``detect``, ``detector``, ``margin``, ``align``, ``crop_spread``, ``mirror``,
    ``views_on_crops``, ``runtime``) are those of :class:`~emotify_ml.scoring.options.ScoringOptions`;
    ``python -m pipelines.score_batch`` builds this object directly from its composed config
    (``experiments/score_batch.yaml``). Plain values,
    so it travels to Spark executors.

    Parameters
    ----------
    input : str or path or list
        Folder (recursive), file, or glob of images and videos (see :func:`list_inputs`).
    output : str or path
        Parquet folder; rows are appended as part files (see :data:`COLUMNS`).
    engine : {"local", "spark"}
    model : str, optional
        MLflow model URI or folder; None: the champion, else the shipped model (:func:`resolve_model`).
    allow_remote_model : bool
        Allow a remote ``model`` or tracking store (``http(s)://``, ``s3://``, ...); refused by default.
    tracking : dict
        The tracking store: ``uri`` (None: MLflow's current one) to resolve ``model`` and the champion in.
    frame_stride : int
        Score every ``frame_stride``-th video frame.
    frames_per_item : int
        Video frames per work item (see :func:`plan_work`).
    batch_size : int
        Images classified at once (and per part file with the local engine).
    progress : bool
        Show a progress bar (local engine).
    spark : SparkOptions
    """

    input: Any = None
    output: Any = None
    engine: str = "local"
    model: str | None = None
    allow_remote_model: bool = False
    tracking: dict[str, Any] = field(default_factory=dict)
    frame_stride: int = 1
    frames_per_item: int = 600
    batch_size: int = 256
    progress: bool = True
    spark: SparkOptions = field(default_factory=SparkOptions)

    @property
    def tracking_uri(self) -> str | None:
        return (self.tracking or {}).get("uri")

    def check(self) -> "BatchOptions":
        super().check()
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}; got {self.engine!r}")
        _check_positive(frame_stride=self.frame_stride, frames_per_item=self.frames_per_item,
                        batch_size=self.batch_size)
        return self


# ----------------------------------------------------------------------------------------------- scoring

class BatchScorer:
    """Score images and video ranges into rows of :data:`COLUMNS`: the one function of both engines.

    Parameters
    ----------
    classifier : emotion model with ``predict_proba`` (:func:`emotify_ml.load_emotion_model`)
    options : BatchOptions or ScoringOptions
        How faces are found and cropped (and, for videos, ``frame_stride``).
    model : ResolvedModel
        Written in each row (``model_uri``, ``model_version``).
    """

    def __init__(self, classifier, options: ScoringOptions, model: ResolvedModel):
        from emotify_ml.scoring.frame import FrameStep

        self.options = options.check()
        self.model = model
        self.step = FrameStep(classifier, options=options)

    @classmethod
    def load(cls, model: ResolvedModel, options: ScoringOptions) -> "BatchScorer":
        """Load the model from ``model.local_dir`` and make the detector."""
        from emotify_ml.models.loading import load_resolved

        return cls(load_resolved(model, kind="emotion", runtime=options.runtime), options, model)

    def _faces(self, frame: np.ndarray, picture: bool):
        """``(crops (K, V, S, S), records)`` of one BGR frame; a faceless frame gives one ``none`` record."""
        faces, crops = self.step.locate(frame, picture=picture)
        if not len(faces):
            return crops, [{"face_source": "none"}]
        records = []
        for k, (box, score, source) in enumerate(zip(faces.boxes, faces.scores, faces.sources)):
            record = {"face": k, "face_source": source, "x": float(box[0]), "y": float(box[1]), "w": float(box[2]),
                      "h": float(box[3])}
            if source == "detector":
                record["det_score"] = float(score)
            records.append(record)
        return crops, records

    def classify(self, pending) -> pd.DataFrame:
        """Classify the crops of ``pending`` [(base row, crops, records)] in one batch and build the rows."""
        crops = [c for _, c, _ in pending if len(c)]
        proba = self.step.classify(np.concatenate(crops)) if crops else np.zeros((0, len(EMOTIONS)))
        rows = [{**base, **record} for base, _, records in pending for record in records]
        table = pd.DataFrame(rows, columns=list(COLUMNS))
        scored = table["face_source"].isin(["detector", "whole_image"]).to_numpy()  # in the order of the crops
        values, labels = np.full((len(table), len(EMOTIONS)), np.nan), np.full(len(table), None, dtype=object)
        values[scored], labels[scored] = proba, np.asarray(EMOTIONS, dtype=object)[proba.argmax(axis=1)]
        table[list(EMOTIONS)], table["label"] = values, labels
        return self.frame_of(table)

    def frame_of(self, table: pd.DataFrame) -> pd.DataFrame:
        """``table`` (with :data:`COLUMNS`) with this model's columns filled and the dtypes of :data:`COLUMNS`."""
        table["model_uri"] = self.model.uri
        table["model_version"] = self.model.version
        return table.astype(COLUMNS)

    def score_images(self, items) -> pd.DataFrame:
        """Score images: ``items`` is an iterable of ``(WorkItem, bytes or None)`` (None: read the file)."""
        return self.classify(self.prepare_images(items))

    def prepare_images(self, items) -> list:
        """Read, decode and crop images (no classification): what :meth:`classify` takes.

        Safe to run in another thread than :meth:`classify` (the detector and the classifier are
        separate objects), so the next batch's decoding overlaps this batch's inference.
        """
        pending = []
        for item, data in items:
            base = {"path": item.path, "size": item.size, "mtime_ms": item.mtime_ms, "kind": "image"}
            try:
                if data is None:
                    data = Path(item.path).read_bytes()
                frame = decode_image(data)
                crops, records = self._faces(frame, picture=True)
            except Exception as exc:  # noqa: BLE001 - a bad file is a row, not a crash
                pending.append((base, (), [{"error": _describe(exc)}]))
                continue
            pending.append((base, crops, records))
        return pending

    def score_video(self, item: WorkItem) -> pd.DataFrame:
        """Score every ``frame_stride``-th frame of ``item``'s range ``[start, stop)`` of a video."""
        base = {"path": item.path, "size": item.size, "mtime_ms": item.mtime_ms, "kind": "video"}
        stride = getattr(self.options, "frame_stride", 1)
        pending = []
        try:
            for frame in read_video(item.path, stride=stride, start=item.start, end=item.stop):
                crops, records = self._faces(frame.image, picture=False)
                time_s = None if np.isnan(frame.timestamp) else frame.timestamp
                pending.append(({**base, "frame": frame.index, "time_s": time_s}, crops, records))
        except Exception as exc:  # noqa: BLE001 - a bad file is a row, not a crash
            return self.classify([(base, (), [{"error": _describe(exc)}])])
        return self.classify(pending)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _check_positive(**values) -> None:
    for name, value in values.items():
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an int >= 1; got {value!r}")


# ----------------------------------------------------------------------------------------------- engines

def write_part(table: pd.DataFrame, output) -> Path:
    """Append one parquet part file to ``output`` (written under a temporary name, then renamed)."""
    output = Path(output)
    path = output / f"part-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:12]}.parquet"
    tmp = output / f".{path.name}.tmp"
    try:
        output.mkdir(parents=True, exist_ok=True)
        import pyarrow as pa
        import pyarrow.parquet as pq

        arrow = pa.Table.from_pandas(table, schema=arrow_schema(), preserve_index=False)
        pq.write_table(arrow.replace_schema_metadata(None), tmp)  # plain parquet, as Spark writes it
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)  # no half-written part left behind (a full disk, a kill of the writer's folder)
        raise OutputError(f"cannot write {str(path)!r}: {exc}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def run_local(items, scorer: BatchScorer, output, *, batch_size: int = 256, progress: bool = True) -> dict:
    """Score work items in this process with a progress bar; a part file per ``batch_size`` images or per video.

    A file's rows are written only once all of it is scored, so the resume key (path, size,
    mtime) of an interrupted run never marks a half-scored video as done.
    """
    from tqdm.auto import tqdm

    counts = {"rows": 0, "faces": 0, "errors": 0}

    def flush(table):
        if len(table):
            write_part(table, output)
            counts["rows"] += len(table)
            counts["faces"] += int(table["face_source"].isin(["detector", "whole_image"]).sum())
            counts["errors"] += int(table["error"].notna().sum())

    images = [i for i in items if i.kind == "image"]
    videos = [i for i in items if i.kind == "video"]
    chunks = [[(item, None) for item in images[i:i + batch_size]] for i in range(0, len(images), batch_size)]
    with tqdm(total=len(items), unit="item", desc="scoring", disable=not progress) as bar, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="emotify-decode") as reader:
        # the next chunk is read and decoded while this one is classified (the interpreter releases the GIL)
        ahead = reader.submit(scorer.prepare_images, chunks[0]) if chunks else None
        try:
            for k in range(len(chunks)):
                pending = ahead.result()
                if k + 1 < len(chunks):
                    ahead = reader.submit(scorer.prepare_images, chunks[k + 1])
                flush(scorer.classify(pending))
                bar.update(len(pending))
        except BaseException:  # a failed write or Ctrl-C: do not wait for the chunk being read
            reader.shutdown(wait=False, cancel_futures=True)
            raise
        ranges = []  # a video's ranges are written together, so a re-run never skips an unfinished video
        for item in videos:
            ranges.append(scorer.score_video(item))
            if item.stop is None:  # the video's last range
                flush(pd.concat(ranges, ignore_index=True))
                ranges = []
            bar.update(1)
    return counts


def spark_session(master: str = "local[*]", *, app_name: str = "emotify-score-batch", local_dir=None,
                  conf: dict | None = None):
    """A SparkSession for batch scoring, its scratch files kept out of the working directory.

    Parameters
    ----------
    master : str
        ``local[*]``, ``local[2]``, or a cluster URL (``spark://host:7077``, ``yarn``, ``k8s://...``).
    app_name : str
    local_dir : str or path, optional
        Spark's scratch folder (shuffle, ``spark.local.dir``), warehouse and Derby home;
        None: a new temporary folder.
    conf : dict, optional
        More Spark settings (they win over the defaults set here).

    Raises
    ------
    ModuleNotFoundError
        PySpark is not installed (``pip install emotify[spark]``).
    """
    import sys

    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ModuleNotFoundError("engine=spark needs PySpark: pip install 'emotify[spark]' "
                                  "(or pip install 'pyspark>=3.5,<5')") from None
    scratch = Path(local_dir) if local_dir else Path(tempfile.mkdtemp(prefix="emotify-spark-"))
    scratch.mkdir(parents=True, exist_ok=True)
    settings = {
        "spark.local.dir": str(scratch / "local"),
        "spark.sql.warehouse.dir": str(scratch / "warehouse"),
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={scratch / 'derby'}",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.python.worker.reuse": "true",
        "spark.pyspark.python": sys.executable,
        "spark.pyspark.driver.python": sys.executable,
        "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
    }
    if master.startswith("local"):
        # the workers of a local master import emotify_ml from the same place as this process (a checkout too);
        # a cluster's executors need the package installed (or shipped with spark.submit.pyFiles)
        from emotify_ml.paths import PACKAGE_DIR

        paths = [str(PACKAGE_DIR.parent), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        settings.update({"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1",
                         "spark.executorEnv.PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))})
    settings.update({str(k): str(v) for k, v in (conf or {}).items()})
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    # the Python workers of a local master are this interpreter, not the ``python3`` first on PATH (an
    # unactivated venv): PySpark reads PYSPARK_PYTHON when the context starts, before spark.pyspark.python
    pinned = {"PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable} if master.startswith("local") else {}
    previous = {name: os.environ.get(name) for name in pinned}
    os.environ.update(pinned)
    try:
        spark = builder.getOrCreate()
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def arrow_schema():
    """The Arrow schema of :data:`COLUMNS` (the same for part files of both engines)."""
    import pyarrow as pa

    kinds = {"string": pa.string(), "int64": pa.int64(), "Int64": pa.int64(), "float64": pa.float64()}
    return pa.schema([pa.field(name, kinds[dtype], nullable=True) for name, dtype in COLUMNS.items()])


def spark_schema():
    """The Spark schema of :data:`COLUMNS`."""
    from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType

    kinds = {"string": StringType(), "int64": LongType(), "Int64": LongType(), "float64": DoubleType()}
    return StructType([StructField(name, kinds[dtype], True) for name, dtype in COLUMNS.items()])


_WORKER_SCORERS: dict = {}
"""Per Python worker: the scorer of each (model folder, options), loaded once and reused by every task."""


def worker_scorer(model: ResolvedModel, options: ScoringOptions, model_file: str | None = None) -> BatchScorer:
    """The scorer of this process, loaded on first use (once per Spark Python worker, not per batch).

    ``model_file`` is the name under which the driver shipped the model folder with
    ``SparkContext.addFile``; it is found with ``SparkFiles.get`` (a cluster's executors do
    not see the driver's disk).
    """
    key = (model.uri, model_file, repr(options))
    if key not in _WORKER_SCORERS:
        local = model
        if model_file:
            from pyspark import SparkFiles

            local = replace(model, local_dir=SparkFiles.get(model_file))
        t0 = time.perf_counter()
        _WORKER_SCORERS[key] = BatchScorer.load(local, options)
        _WORKER_SCORERS[key].load_seconds = time.perf_counter() - t0
        _WORKER_SCORERS[key].model = model
    return _WORKER_SCORERS[key]


def _spark_path(path: str) -> str:
    """A binaryFile ``path`` (``file:/x`` or ``file:///x``) as the local path the local engine writes."""
    if path.startswith("file:"):
        path = path[len("file:"):]
        while path.startswith("//"):
            path = path[1:]
        from urllib.parse import unquote

        path = unquote(path)
    return path


def run_spark(spark, items, model: ResolvedModel, options: ScoringOptions, output, *, partitions: int | None = None,
              batch_size: int = 256, ship_model: bool = True, load_times=None) -> dict:
    """Score work items on Spark and append the rows to ``output`` as parquet.

    ``output`` must be a folder the driver can write (local disk or a shared mount): the job
    writes ``output/_staging-*`` and its part files are then moved into ``output``.
    Images are read with Spark's ``binaryFile`` source; video ranges are rows of a small
    DataFrame, each opened by path by the worker that scores it (so videos must be on a
    file system every executor sees). Both go through ``mapInPandas`` with a function that
    loads the model once per Python worker (:func:`worker_scorer`).

    Parameters
    ----------
    partitions : int, optional
        Partitions of the images (default: Spark's default parallelism x 4, at most one per image).
    batch_size : int
        Images classified at once: the ``k``-th batch holds images ``k*batch_size`` to
        ``(k+1)*batch_size - 1`` of ``items`` (in order), exactly as with :func:`run_local`, so
        both engines give bit-identical probabilities (BLAS results can depend on the batch).
    ship_model : bool
        Ship the model folder to the executors with ``addFile`` (needed on a cluster).
    load_times : pyspark Accumulator, optional
        Receives the seconds each worker spent loading the model (for benchmarks).
    """
    from pyspark.sql import functions as F

    output = str(Path(output).resolve())
    model_file = None
    if ship_model:
        spark.sparkContext.addFile(model.local_dir, recursive=True)
        model_file = Path(model.local_dir).name
    schema = spark_schema()
    images = [i for i in items if i.kind == "image"]
    videos = [i for i in items if i.kind == "video"]

    def loaded():
        scorer = worker_scorer(model, options, model_file)
        if load_times is not None and not getattr(scorer, "load_reported", False):
            load_times.add([scorer.load_seconds])
            scorer.load_reported = True
        return scorer

    def score_image_batch(pdf):
        # one batch of the driver's plan (the local engine's batches), in plan order: same crops classified together
        pdf = pdf.sort_values("order")
        work = [(WorkItem(_spark_path(p), int(n), int(m), "image"), bytes(c))
                for p, n, m, c in zip(pdf["path"], pdf["length"], pdf["mtime_ms"], pdf["content"])]
        return loaded().score_images(work)

    def score_video_batches(batches):
        scorer = loaded()
        for pdf in batches:
            for row in pdf.itertuples(index=False):
                stop = None if pd.isna(row.stop) else int(row.stop)
                yield scorer.score_video(WorkItem(row.path, int(row.size), int(row.mtime_ms), "video",
                                                  int(row.start), stop))

    frames = []
    if images:
        n_batches = -(-len(images) // batch_size)
        n = partitions or min(n_batches, spark.sparkContext.defaultParallelism * 4)
        plan = spark.createDataFrame(pd.DataFrame({"local_path": [i.path for i in images],
                                                   "order": range(len(images)),
                                                   "batch": [k // batch_size for k in range(len(images))]}),
                                     "local_path string, order long, batch long")
        df = (spark.read.format("binaryFile").load([i.path for i in images])
              .select("path", "length", F.expr("unix_millis(modificationTime)").alias("mtime_ms"), "content")
              .withColumn("local_path", F.regexp_replace("path", "^file:/+", "/"))
              .join(F.broadcast(plan), "local_path")
              .repartition(max(1, n), "batch"))
        frames.append(df.groupBy("batch").applyInPandas(score_image_batch, schema))
    if videos:
        table = pd.DataFrame([{"path": v.path, "size": v.size, "mtime_ms": v.mtime_ms, "start": v.start,
                               "stop": v.stop} for v in videos]).astype({"stop": "Int64"})
        df = spark.createDataFrame(table, "path string, size long, mtime_ms long, start long, stop long")
        frames.append(df.repartition(len(videos)).mapInPandas(score_video_batches, schema))
    if not frames:
        return {"rows": 0, "faces": 0, "errors": 0}
    result = frames[0] if len(frames) == 1 else frames[0].unionByName(frames[1])
    staging = f"{output}/_staging-{uuid.uuid4().hex[:12]}"
    try:
        result.write.mode("overwrite").parquet(staging)
    except BaseException:  # a failed job adds nothing to the output, and leaves no half-written staging folder
        shutil.rmtree(staging, ignore_errors=True)
        raise
    # the job writes a staging folder; its part files then join the output
    staged = pd.read_parquet(staging, columns=["face_source", "error"])
    for part in Path(staging).glob("part-*.parquet"):
        os.replace(part, Path(output) / part.name)
    shutil.rmtree(staging, ignore_errors=True)
    return {"rows": len(staged), "faces": int(staged["face_source"].isin(["detector", "whole_image"]).sum()),
            "errors": int(staged["error"].notna().sum())}


def score_batch(input=None, output=None, *, options: BatchOptions | None = None, session=None, say=log.info,
                **changes) -> BatchSummary:
    """Detect and score every face of the images and videos of ``input``; append rows to the parquet folder ``output``.

    Parameters
    ----------
    input, output : str or path, optional
        Set :attr:`BatchOptions.input` and :attr:`BatchOptions.output` (required, here or in ``options``).
        Files whose key (path, size, mtime) is already in ``output`` are skipped.
    options : BatchOptions, optional
        Every setting (default: :class:`BatchOptions` ()).
    session : SparkSession, optional
        ``engine="spark"``: use this session (its master wins); None: one is made from
        ``options.spark`` and stopped at the end.
    say : callable
        Receives one-line progress messages (model in use, files skipped).
    **changes
        :class:`BatchOptions` fields to replace, e.g. ``engine="spark"``, ``frame_stride=5``,
        ``detect="never"``, ``spark=SparkOptions(master="local[2]")``.

    Returns
    -------
    BatchSummary

    Raises
    ------
    DataNotFoundError
        ``input`` names no image or video.
    ModelNotFoundError
        No model to score with.
    OutputError
        ``output`` cannot be read (to resume) or written.
    ValueError
        An option is out of range (one line naming it).
    """
    given = {k: v for k, v in (("input", input), ("output", output)) if v is not None}
    options = replace(options if options is not None else BatchOptions(), **given, **changes).check()
    for name in ("input", "output"):
        if getattr(options, name) in (None, ""):
            raise ValueError(f"{name} is required: python -m pipelines.score_batch input=<folder|glob|file> "
                             "output=<parquet folder> (or score_batch(input, output))")
    files = list_inputs(options.input)
    output = Path(options.output).expanduser().resolve()
    if output.exists() and not output.is_dir():
        raise OutputError(f"output {str(output)!r} exists and is not a folder")
    done = done_keys(output)
    items = plan_work(files, frame_stride=options.frame_stride, frames_per_item=options.frames_per_item, done=done)
    todo_files = len({i.path for i in items})
    summary = BatchSummary(engine=options.engine, files=todo_files, skipped=len(files) - todo_files,
                           work_items=len(items), output=str(output))
    resolved = resolve_model(options.model, tracking_uri=options.tracking_uri, allow_remote=options.allow_remote_model)
    summary.model_uri, summary.model_version = resolved.uri, resolved.version
    say(f"model: {resolved.uri}" + (f" (version {resolved.version})" if resolved.version else "")
        + f"; {len(files)} files, {summary.skipped} already in {output}, {todo_files} to score")
    if not items:
        return summary
    t0 = time.perf_counter()
    if options.engine == "local":
        t_load = time.perf_counter()
        scorer = BatchScorer.load(resolved, options)
        summary.extra["model_load_s"] = round(time.perf_counter() - t_load, 3)
        counts = run_local(items, scorer, output, batch_size=options.batch_size, progress=options.progress)
    else:
        spark = options.spark
        own = session is None
        if own:
            scratch = spark.local_dir or tempfile.mkdtemp(prefix="emotify-spark-")
            try:
                session = spark_session(spark.master, local_dir=scratch, conf=spark.conf)
            except BaseException:  # no PySpark, no Java, a bad master: the scratch folder made here goes too
                if not spark.local_dir:
                    shutil.rmtree(scratch, ignore_errors=True)
                raise
        try:
            load_times = session.sparkContext.accumulator([], _ListParam())
            counts = run_spark(session, items, resolved, options, output, partitions=spark.partitions,
                               batch_size=options.batch_size, load_times=load_times)
            summary.extra["model_load_s_per_worker"] = [round(s, 3) for s in load_times.value]
        finally:
            if own:
                session.stop()
                if not spark.local_dir:
                    shutil.rmtree(scratch, ignore_errors=True)
    summary.seconds = round(time.perf_counter() - t0, 3)
    summary.rows, summary.faces, summary.errors = counts["rows"], counts["faces"], counts["errors"]
    summary.faces_per_s = round(summary.faces / summary.seconds, 2) if summary.seconds > 0 else 0.0
    return summary


def _ListParam():
    """An AccumulatorParam that concatenates lists (a PySpark class, so made when Spark is in use)."""
    from pyspark.accumulators import AccumulatorParam

    class ListParam(AccumulatorParam):
        def zero(self, value):
            return []

        def addInPlace(self, a, b):
            return list(a) + list(b)

    return ListParam()
