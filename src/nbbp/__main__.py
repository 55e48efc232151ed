"""Command line: ``python -m nbbp demo`` trains a network on built-in data and reports."""

import argparse
import sys
import time

import numpy as np


def demo(args):
    from . import Network
    from .datasets import spirals

    X, y = spirals(n_samples=args.samples, seed=args.seed)
    n_train = int(0.8 * len(X))
    X_train, y_train, X_test, y_test = X[:n_train], y[:n_train], X[n_train:], y[n_train:]
    net = Network([2, 64, 64, 3], activation="relu", output="softmax", loss="cross_entropy",
                  seed=args.seed, dtype=np.float32)
    print(f"nbbp demo: {net!r} on {n_train} spiral points, {args.epochs} epochs of mini-batch SGD "
          f"with momentum 0.9 (batch {args.batch_size}, learning rate {args.learning_rate})")
    start = time.perf_counter()
    report = max(1, args.epochs // 10)
    history = net.fit(X_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
                      learning_rate=args.learning_rate, optimizer="momentum",
                      callback=lambda epoch, h: (epoch + 1) % report or print(
                          f"  epoch {epoch + 1:4d}/{args.epochs}  loss {h.loss[-1]:.4f}", flush=True))
    elapsed = time.perf_counter() - start
    accuracy = np.mean(np.argmax(net.forward(X_test), axis=1) == y_test)
    print(f"test accuracy {accuracy:.1%}; {history.epochs} epochs in {elapsed:.2f} s "
          f"({history.epochs * n_train / elapsed:,.0f} samples/s, compile time included on a first run)")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="nbbp", description="Backpropagation in Numba kernels.")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("demo", help="train a classifier on built-in 2-D spirals")
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=0.05)
    p.add_argument("--samples", type=int, default=3000)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=demo)
    args = parser.parse_args(argv)
    for name in ("epochs", "batch_size", "samples"):
        if getattr(args, name, 1) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if getattr(args, "learning_rate", 1.0) <= 0:
        parser.error("--learning-rate must be > 0")
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
