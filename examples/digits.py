"""Handwritten digits with nbbp's MLPClassifier, a drop-in for scikit-learn's.

scikit-learn's 8x8 digits (1797 images of 64 pixels, 10 classes; bundled with scikit-learn, so
nothing is downloaded) are split 75/25, stratified. A Pipeline standardises the pixels and
trains ``nbbp.MLPClassifier`` with one hidden layer of 64 relu neurons; the script
prints the test accuracy and the training time. ``--compare`` trains scikit-learn's own
MLPClassifier with the same hyperparameters on the same split, one after the other.

    python examples/digits.py
    python examples/digits.py --solver sgd --learning-rate 0.1 --compare
"""

import argparse
import time

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from nbbp import MLPClassifier


def train(estimator, X_train, y_train, X_test, y_test):
    """(test accuracy, seconds to fit, epochs) of a StandardScaler + estimator pipeline."""
    model = make_pipeline(StandardScaler(), estimator)
    start = time.perf_counter()
    model.fit(X_train, y_train)
    seconds = time.perf_counter() - start
    return model.score(X_test, y_test), seconds, model[-1].n_iter_


def main(argv=None):
    """Train and report; return {"accuracy", "seconds", "n_iter"}, with "sklearn_accuracy",
    "sklearn_seconds" and "sklearn_n_iter" under --compare."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, default=64, help="neurons of the hidden layer")
    parser.add_argument("--solver", choices=["adam", "sgd"], default="adam")
    parser.add_argument("--learning-rate", type=float, default=0.001, help="learning_rate_init")
    parser.add_argument("--max-iter", type=int, default=300, help="maximum number of epochs")
    parser.add_argument("--seed", type=int, default=0, help="random_state of split and model")
    parser.add_argument("--compare", action="store_true",
                        help="also train sklearn.neural_network.MLPClassifier")
    args = parser.parse_args(argv)

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y,
                                                        random_state=args.seed)
    params = dict(hidden_layer_sizes=(args.hidden,), solver=args.solver,
                  learning_rate_init=args.learning_rate, max_iter=args.max_iter,
                  random_state=args.seed)
    # The first fit in a process loads the compiled kernels from Numba's disk cache (or
    # compiles them): one epoch on a few samples beforehand keeps that out of the timing.
    MLPClassifier(**params).partial_fit(X_train[:20] / 16, y_train[:20], classes=range(10))

    accuracy, seconds, n_iter = train(MLPClassifier(**params), X_train, y_train, X_test, y_test)
    print(f"nbbp MLPClassifier:    test accuracy {accuracy:.2%}  ({n_iter} epochs, "
          f"{seconds:.2f} s)")
    result = dict(accuracy=accuracy, seconds=seconds, n_iter=n_iter)
    if args.compare:
        from sklearn.neural_network import MLPClassifier as SklearnMLPClassifier

        accuracy, seconds, n_iter = train(SklearnMLPClassifier(**params), X_train, y_train,
                                          X_test, y_test)
        print(f"sklearn MLPClassifier: test accuracy {accuracy:.2%}  ({n_iter} epochs, "
              f"{seconds:.2f} s)")
        result.update(sklearn_accuracy=accuracy, sklearn_seconds=seconds, sklearn_n_iter=n_iter)
    return result


if __name__ == "__main__":
    main()
