"""Remedies for vanishing gradients, compared on one deep network.

A 20-layer network (19 hidden layers of 32 neurons) trains on the built-in spirals six ways:

- plain: sigmoid hidden layers, Xavier initialisation;
- relu + He: relu hidden layers, He initialisation;
- batch norm: sigmoid, Xavier, every hidden layer batch-normalised;
- residual: sigmoid, Xavier, a skip every 2 layers joining before f, a(l+2) = f(z(l+2) + a(l));
- identity: the same skips in the identity form, a(l+2) = a(l) + f(z(l+2));
- id. tanh: the identity form with tanh hidden layers.

For each it prints the ratio of the first layer's gradient norm to the last layer's over the
first epoch (``history.grad_norm[0]``), and the training loss after the last epoch. With the
defaults (1,500 points, 30 epochs of SGD with momentum 0.9, learning rate 0.01, seed 0; ln 3 =
1.0986 is the loss of a uniform guess):

    plain        first/last 7.9e-14   loss 1.102
    relu + He    first/last 0.28      loss 0.360
    batch norm   first/last 1.4       loss 0.889
    residual     first/last 8.1e-08   loss 1.105
    identity     first/last 2.3e-03   loss 1.158
    id. tanh     first/last 0.30      loss 0.0015

The plain network multiplies its error signal by sigmoid' <= 0.25 at each of its 19 hidden
layers on the way back, so the first layer gets almost nothing and the network does not learn.
relu' is 1 on the active half, and He's scaling keeps the signal's variance from layer to
layer. Batch normalisation rescales each layer's pre-activations to unit variance, so the
backward pass divides by the same small standard deviations that the forward pass divided by,
and keeps sigmoid in its steep middle.

A skip that joins before f still passes through one sigmoid' (at the layer it joins) per 2
layers: it halves the number of factors of 0.25 on the way to the input (the ratio grows a
million-fold, 0.25^-10), but 9 factors remain, and the first layers still learn too slowly to
move the loss in 30 epochs. The identity form gives the gradient a path with no f' on it,
dE/da(l) += dE/da(l+2): every hidden layer's gradient is of order 1 (the first one's only
passes the first layer's own sigmoid'). Its first/last ratio stays small for another reason:
each sigmoid block adds its positive mean (about 0.5) to the running sum a(l), so a(19) is
about 5 per neuron: at the start the output's logits are large (loss 7.3 on the data, against
the plain network's 1.26), the last layer's gradient delta a(19)^T is 24 times the plain one's,
and its steps are too large for the learning rate, which the loss shows. A branch of mean 0,
tanh, keeps the sum's scale: the same skips then give a ratio near relu's and the lowest loss.

    python examples/deep_remedies.py --plot remedies.png
"""

import argparse
import importlib

import nbbp
from nbbp.datasets import spirals

N_CLASSES = 3
# name: Network keyword arguments
CONFIGS = {
    "plain": dict(activation="sigmoid", init="xavier"),
    "relu + He": dict(activation="relu", init="he"),
    "batch norm": dict(activation="sigmoid", init="xavier", batch_norm=True),
    "residual": dict(activation="sigmoid", init="xavier", residual=2),
    "identity": dict(activation="sigmoid", init="xavier", residual=2, skip="identity"),
    "id. tanh": dict(activation="tanh", init="xavier", residual=2, skip="identity"),
}


def train(config, X, y, depth, width, seed, epochs, learning_rate, batch_size):
    """History of ``epochs`` epochs of one configuration, and its first/last gradient-norm
    ratio over the first epoch."""
    sizes = [X.shape[1]] + [width] * (depth - 1) + [N_CLASSES]
    net = nbbp.Network(sizes, output="softmax", loss="cross_entropy", seed=seed, **config)
    history = net.fit(X, y, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                      optimizer="momentum", shuffle=True)
    norms = history.grad_norm[0]
    return history, float(norms[0] / norms[-1])


def plot(results, path):
    """One gradient-flow panel per configuration: the first and the last epoch."""
    from matplotlib.figure import Figure

    from nbbp.plot import gradient_flow

    columns = 2
    rows = (len(results) + columns - 1) // columns
    fig = Figure(figsize=(5.2 * columns, 3.4 * rows), layout="constrained")
    axes = fig.subplots(rows, columns, sharey=True, squeeze=False).ravel()
    for ax, (name, (history, ratio)) in zip(axes, results.items()):
        gradient_flow(history, ax, epoch=[0, -1], quantities=("grad_norm",))
        ax.set_title(f"{name}: first / last = {ratio:.2g}, loss {history.loss[-1]:.3f}",
                     fontsize="medium")
    fig.suptitle("Per-layer gradient norm ||dE/dW(l)||, first and last epoch (log scale)")
    fig.savefig(path, dpi=100)


def main(argv=None):
    """Train every configuration; print and return {name: {"ratio": first/last gradient norm
    over the first epoch, "loss": training loss of the last epoch}}."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=1500, help="spiral points (default 1500)")
    parser.add_argument("--depth", type=int, default=20, help="weight layers (default 20)")
    parser.add_argument("--width", type=int, default=32, help="hidden neurons (default 32)")
    parser.add_argument("--epochs", type=int, default=30, help="epochs (default 30)")
    parser.add_argument("--learning-rate", type=float, default=0.01)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", metavar="PATH", help="write a PNG of the gradient flow")
    args = parser.parse_args(argv)
    if args.depth < 4 or args.width < 1 or args.samples < 2 or args.epochs < 1:
        parser.error("need --depth >= 4 (for a skip over 2 layers), --width >= 1, --samples >= 2 "
                     "and --epochs >= 1")
    if args.batch_size < 2:
        parser.error("need --batch-size >= 2 (batch normalisation needs 2 samples a batch)")
    if args.plot:
        try:
            importlib.import_module("nbbp.plot")  # fail before training, not after
        except ImportError as exc:
            parser.error(str(exc))

    X, y = spirals(n_samples=args.samples, n_classes=N_CLASSES, seed=args.seed)
    results = {}
    print(f"{args.depth} layers, hidden width {args.width}, {args.samples} spiral points, "
          f"{args.epochs} epochs of SGD with momentum 0.9 (learning rate {args.learning_rate}):")
    print(f"  {'':<11}{'first/last':>12}{'loss':>9}")
    for name, config in CONFIGS.items():
        history, ratio = train(config, X, y, args.depth, args.width, args.seed, args.epochs,
                               args.learning_rate, args.batch_size)
        results[name] = (history, ratio)
        print(f"  {name:<11}{ratio:12.2e}{history.loss[-1]:9.4f}")
    if args.plot:
        plot(results, args.plot)
        print(f"wrote {args.plot}")
    return {name: {"ratio": ratio, "loss": history.loss[-1]}
            for name, (history, ratio) in results.items()}


if __name__ == "__main__":
    main()
