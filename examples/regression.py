"""Regression: fit y = sin(x) on [-pi, pi] from noisy samples.

A 1-32-32-1 tanh network with an identity output and the squared-error loss, trained with Adam.
The score on the training samples is capped by the noise (R^2 <= 1 - noise^2 / Var(sin) = 0.98
for the default noise 0.1), so the fit is also scored against the noise-free sine on a grid.

    python examples/regression.py --plot regression.png
"""

import argparse
import importlib

import numpy as np

import nbbp


def make_data(n_samples, noise, seed):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-np.pi, np.pi, size=(n_samples, 1))
    y = np.sin(X[:, 0]) + rng.normal(scale=noise, size=n_samples)
    return X, y


def plot(net, history, X, y, X_grid, path):
    from matplotlib.figure import Figure

    from nbbp.plot import loss_curves

    fig = Figure(figsize=(10, 4), layout="constrained")
    fit_ax, loss_ax = fig.subplots(1, 2)
    fit_ax.scatter(X[:, 0], y, s=8, color="0.6", label="noisy samples")
    fit_ax.plot(X_grid[:, 0], np.sin(X_grid[:, 0]), color="k", linestyle="--", label="sin(x)")
    fit_ax.plot(X_grid[:, 0], net.predict(X_grid), color="C3", label="network")
    fit_ax.set_xlabel("x")
    fit_ax.set_ylabel("y")
    fit_ax.legend()
    loss_curves(history, loss_ax)
    fig.savefig(path, dpi=100)


def main(argv=None):
    """Train and report; return {"loss", "r2_train", "r2_true"}."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--noise", type=float, default=0.1, help="std of the added noise")
    parser.add_argument("--hidden", type=int, default=32, help="neurons per hidden layer")
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=0.005)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", metavar="PATH", help="write a PNG of the fit and the loss")
    args = parser.parse_args(argv)
    if args.samples < 2 or args.epochs < 1 or args.hidden < 1 or args.noise < 0:
        parser.error("need --samples >= 2, --epochs >= 1, --hidden >= 1 and --noise >= 0")
    if args.plot:
        try:
            importlib.import_module("nbbp.plot")  # fail before training, not after
        except ImportError as exc:
            parser.error(str(exc))

    X, y = make_data(args.samples, args.noise, args.seed)
    net = nbbp.Network([1, args.hidden, args.hidden, 1], activation="tanh", output="identity",
                       loss="squared_error", seed=args.seed)
    history = net.fit(X, y, epochs=args.epochs, batch_size=args.batch_size,
                      learning_rate=args.learning_rate, optimizer="adam")
    X_grid = np.linspace(-np.pi, np.pi, 501)[:, None]
    result = {"loss": history.loss[-1], "r2_train": net.score(X, y),
              "r2_true": net.score(X_grid, np.sin(X_grid[:, 0]))}
    print(f"{net!r}: {history.epochs} epochs of Adam on {args.samples} samples of "
          f"sin(x) + N(0, {args.noise}^2)")
    print(f"final training loss {result['loss']:.5f}, R^2 on the samples {result['r2_train']:.4f}, "
          f"R^2 against sin(x) on a 501-point grid {result['r2_true']:.4f}")
    if args.plot:
        plot(net, history, X, y, X_grid, args.plot)
        print(f"wrote {args.plot}")
    return result


if __name__ == "__main__":
    main()
