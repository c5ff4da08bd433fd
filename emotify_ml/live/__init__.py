"""Live emotion scoring: ``python -m emotify_ml.live`` on a webcam, a video, an image or a folder.

The live app is capture + loop + display + render around the shared scoring core:

* :mod:`emotify_ml.io.frames` - frame sources read in their own thread;
* :mod:`emotify_ml.scoring` - the frame step (detect → align/crop → classify) and the stream
  (tracks, smoothing, actions) that every app shares;
* :mod:`~emotify_ml.live.render` and :mod:`emotify_ml.io.sinks` - overlay, JSON lines, annotated video;
* :mod:`~emotify_ml.live.app` - the loop that ties them together, and the window.

Importing this package loads no model and opens no device.
"""
