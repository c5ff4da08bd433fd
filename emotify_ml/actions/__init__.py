"""Action prediction from body pose, optionally fused with emotion.

Modules (nothing is imported or loaded until asked):

- :mod:`emotify_ml.actions.pose_features` -- skeleton maths and the :class:`PoseFeatures` transformer
- :mod:`emotify_ml.actions.pipeline` -- mirroring augmentation, calibrated action Pipelines, soft vote, the pyfunc model
- :mod:`emotify_ml.actions.mlp` -- :class:`MLPPoseClassifier`, trained with Keras and scored with NumPy
- :mod:`emotify_ml.actions.fusion` -- the emotion prior P(category | emotion) and its fusion with the pose model
- :mod:`emotify_ml.actions.blazepose` -- BlazePose keypoints (ai-edge-litert) mapped to the MPII-16 joints
- :mod:`emotify_ml.actions.live` -- the per-frame predictor the live loop calls
"""
