"""Action prediction from body pose, optionally fused with emotion.

Modules (nothing is imported or loaded until asked):

- :mod:`emotify_ml.actions.pose_features` -- skeleton maths and the :class:`PoseFeatures` transformer
- :mod:`emotify_ml.actions.estimators` -- meta-estimators: mirroring, pose perturbation, hold-out temperature calibration
- :mod:`emotify_ml.actions.builders` -- the action Pipeline, LightGBM and the soft vote (Hydra `_target_`s)
- :mod:`emotify_ml.actions.threads` -- thread tuning of fitted models (`set_n_jobs`)
- :mod:`emotify_ml.actions.lean` -- the lean scorer of a fitted action model (its probabilities without sklearn's per-call checks)
- the action model is loaded and saved by :mod:`emotify_ml.models` (`load_model(kind="action")`)
- :mod:`emotify_ml.actions.mlp` -- :class:`MLPPoseClassifier`, trained with Keras and scored with NumPy
- :mod:`emotify_ml.actions.fusion` -- the emotion prior P(category | emotion) and its fusion with the pose model
- :mod:`emotify_ml.actions.blazepose` -- BlazePose keypoints (ai-edge-litert) mapped to the MPII-16 joints
- :mod:`emotify_ml.actions.live` -- the per-frame predictor the live loop calls
"""
