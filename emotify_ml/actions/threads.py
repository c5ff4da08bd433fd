"""Thread tuning of fitted action models (scoring one pose a frame is faster on one thread)."""

from __future__ import annotations


def set_n_jobs(model, n_jobs: int = 1):
    """Set ``n_jobs`` of every fitted estimator inside ``model`` (wrappers, Pipelines, FeatureUnions); returns it.

    Scoring one pose per frame is faster on one thread: LightGBM's thread start-up
    costs more than the trees when the live loop already keeps the cores busy.
    """
    seen = set()

    def visit(obj):
        if obj is None or id(obj) in seen:
            return
        seen.add(id(obj))
        if hasattr(obj, "get_params") and "n_jobs" in obj.get_params(deep=False):
            obj.set_params(n_jobs=n_jobs)
        for child in (getattr(obj, "estimator_", None), getattr(obj, "estimators_", None), getattr(obj, "steps", None),
                      getattr(obj, "transformer_list", None), getattr(obj, "calibrated_classifiers_", None)):
            if isinstance(child, list):
                for item in child:
                    visit(item[1] if isinstance(item, tuple) else item)
            else:
                visit(child)

    visit(model)
    return model
