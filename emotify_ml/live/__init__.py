"""Live emotion scoring: ``python -m emotify_ml.live`` on a webcam, a video, an image or a folder.

The pieces, each usable on its own:

* :mod:`~emotify_ml.io.frames` - frame sources read in their own thread;
* :mod:`emotify_ml.detection` - face detectors (YuNet, Haar), shared with batch scoring;
* :mod:`~emotify_ml.live.scorer` - detect → crop → embed → classify → track → smooth, batched per frame;
* :mod:`~emotify_ml.scoring.face_tracks` and :mod:`~emotify_ml.scoring.smoothing` - IoU tracking, probability
  smoothing and the flicker metric;
* :mod:`~emotify_ml.live.render` and :mod:`~emotify_ml.io.sinks` - overlay, JSON lines, annotated video;
* :mod:`~emotify_ml.live.app` - the loop that ties them together.

Importing this package loads no model and opens no device.
"""
