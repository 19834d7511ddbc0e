"""Linear probe: how linearly separable a representation is (SCFF's evaluation, DESIGN.md §5).

scikit-learn's ``LogisticRegression(max_iter=1000)`` on features standardised with the
training set's mean and standard deviation (``StandardScaler``), fitted on the training
features, scored on the test features. The same probe is run on the untrained device's
features too: a wide random layer already scores high, so only the difference says what
training added.
"""

from __future__ import annotations

import warnings

import numpy as np


def probe_accuracy(f_train: np.ndarray, y_train: np.ndarray, f_test: np.ndarray, y_test: np.ndarray,
                   max_iter: int = 1000) -> float:
    """Test accuracy of a logistic-regression probe fitted on standardised training features."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter is part of the probe's definition
        model.fit(np.asarray(f_train, dtype=np.float64), y_train)
    return float(model.score(np.asarray(f_test, dtype=np.float64), y_test))
