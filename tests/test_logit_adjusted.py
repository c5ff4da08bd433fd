"""LogitAdjusted (post-hoc logit adjustment of a probabilistic head) and the svm builder's logit_adjust option."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression

from emotify_ml.pipeline import LogitAdjusted, make_svm


def _imbalanced(seed=0):
    rng = np.random.default_rng(seed)
    y = np.r_[np.zeros(270, int), np.ones(30, int)]
    X = rng.normal(0, 1, (300, 2)) + y[:, None] * 1.0  # overlapping classes: the rare one is under-predicted
    return X, y


def test_tau_zero_is_the_base_model_and_tau_one_divides_by_the_prior():
    X, y = _imbalanced()
    base = LogisticRegression().fit(X, y)
    same = LogitAdjusted(LogisticRegression(), tau=0.0).fit(X, y)
    np.testing.assert_allclose(same.predict_proba(X), base.predict_proba(X))
    adjusted = LogitAdjusted(LogisticRegression(), tau=1.0).fit(X, y)
    np.testing.assert_allclose(adjusted.prior_, [0.9, 0.1])
    expected = base.predict_proba(X) / adjusted.prior_
    np.testing.assert_allclose(adjusted.predict_proba(X), expected / expected.sum(1, keepdims=True))
    assert (adjusted.predict(X) == 1).sum() > (base.predict(X) == 1).sum()  # the rare class is predicted more often
    assert list(adjusted.classes_) == [0, 1]


def test_contract_clone_pickle_and_errors():
    X, y = _imbalanced()
    model = LogitAdjusted(LogisticRegression(), tau=0.5)
    assert clone(model).get_params()["tau"] == 0.5
    with pytest.raises(NotFittedError):
        model.predict_proba(X)
    model.fit(X, y)
    np.testing.assert_allclose(pickle.loads(pickle.dumps(model)).predict_proba(X), model.predict_proba(X))
    with pytest.raises(ValueError, match="tau must be >= 0"):
        LogitAdjusted(LogisticRegression(), tau=-1).fit(X, y)
    with pytest.raises(ValueError, match="predict_proba"):
        LogitAdjusted(None).fit(X, y)


def test_make_svm_wraps_only_when_asked():
    assert not isinstance(make_svm(), LogitAdjusted)
    head = make_svm(logit_adjust=1.0)
    assert isinstance(head, LogitAdjusted) and head.tau == 1.0
