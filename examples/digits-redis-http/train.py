"""Train the model this example serves: the Azure docs' "sklearn_mnist_model.pkl", made small and offline.

The docs sample scores MNIST digits with a scikit-learn model from Azure ML's image-classification tutorial. This
trains the same kind of model (logistic regression) on scikit-learn's bundled 8x8 digits (no download), writes it
where score.py loads it, and writes the sample request and its expected answer. Run it with the scikit-learn that
environment.yml pins (a pickle is loaded by the version that wrote it): python train.py
"""

import json
from pathlib import Path

import joblib
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

HERE = Path(__file__).resolve().parent

digits = load_digits()
train_x, train_y = digits.data[:-10], digits.target[:-10]  # the last 10 images are left out: the samples
model = LogisticRegression(max_iter=5000).fit(train_x, train_y)
joblib.dump(model, HERE / "model" / "sklearn_mnist_model.pkl")

sample = digits.data[-2:]  # two images the model has not seen
(HERE / "samples" / "input.json").write_text(json.dumps({"data": sample.astype(int).tolist()}) + "\n")
(HERE / "samples" / "expected.json").write_text(json.dumps(model.predict(sample).tolist()) + "\n")
print("accuracy on the 10 left out:", model.score(digits.data[-10:], digits.target[-10:]))
