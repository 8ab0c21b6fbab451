"""Classifies 8x8 digit scans with a scikit-learn model trained once per process.

The class is instantiated once by the runtime with `handlerArgs` from the values file; it trains on
the digits dataset that ships inside scikit-learn, so nothing is downloaded at run time.
"""

from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


class DigitClassifier:
    def __init__(self, C=1.0, test_size=0.25, seed=0):
        digits = load_digits()
        x_train, x_test, y_train, y_test = train_test_split(
            digits.data, digits.target, test_size=test_size, random_state=seed, stratify=digits.target)
        self.model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))
        self.model.fit(x_train, y_train)
        self.holdout_accuracy = round(float(self.model.score(x_test, y_test)), 4)

    def predict(self, payload):
        probabilities = self.model.predict_proba([payload["pixels"]])[0]
        best = int(probabilities.argmax())
        return {
            **payload,
            "label": int(self.model.classes_[best]),
            "confidence": round(float(probabilities[best]), 4),
            "model_holdout_accuracy": self.holdout_accuracy,
        }
