"""Vanishing gradients: how much gradient reaches the first layer of a 10-layer network.

The same 10-layer network (9 hidden layers of 32 neurons) trains for one epoch on the built-in
spirals with sigmoid, tanh and relu hidden layers under Xavier and He initialisation. For each,
``history.grad_norm[0]`` holds the mean ||dE/dW(l)|| of every layer over that epoch, and the
ratio first layer / last layer says how much of the error signal survives the way back.

Backpropagation multiplies the error by f'(z) once per layer. sigmoid' <= 0.25, so nine sigmoid
layers scale it by about 0.25**9 ~ 4e-6 whatever the initialisation; tanh' and relu' are 1 near
zero (relu's on the active half), so with weights scaled to keep the signal's variance (Xavier
for tanh, He for relu) the gradient reaches the first layer at the same order of magnitude.
relu under Xavier is the subtle case: the variance halves at every layer both ways, so the
activations fade towards the output while the deltas fade towards the input; their product,
dE/dW, stays level across the layers (ratio near 1) but some 50 times smaller than under He.

    python examples/vanishing_gradients.py --plot vanishing.png
"""

import argparse
import importlib

import nbbp
from nbbp.datasets import spirals

N_CLASSES = 3
CONFIGS = [("sigmoid", "xavier"), ("sigmoid", "he"), ("tanh", "xavier"), ("tanh", "he"),
           ("relu", "xavier"), ("relu", "he")]


def measure(activation, init, X, y, depth, width, seed, learning_rate, batch_size):
    """History of one epoch of a ``depth``-layer network, and its first/last gradient-norm ratio."""
    sizes = [X.shape[1]] + [width] * (depth - 1) + [N_CLASSES]
    net = nbbp.Network(sizes, activation=activation, output="softmax", loss="cross_entropy",
                       init=init, seed=seed)
    history = net.fit(X, y, epochs=1, batch_size=batch_size, learning_rate=learning_rate,
                      shuffle=True)
    norms = history.grad_norm[0]
    return history, float(norms[0] / norms[-1])


def plot(results, path):
    """A grid of gradient-flow panels: activations by row, initialisations by column."""
    from matplotlib.figure import Figure

    from nbbp.plot import gradient_flow

    activations = list(dict.fromkeys(a for a, _ in results))
    inits = list(dict.fromkeys(i for _, i in results))
    fig = Figure(figsize=(4.2 * len(inits), 3.0 * len(activations)), layout="constrained")
    axes = fig.subplots(len(activations), len(inits), sharex=True, sharey=True, squeeze=False)
    for (activation, init), (history, ratio) in results.items():
        ax = axes[activations.index(activation), inits.index(init)]
        gradient_flow(history, ax, epoch=0)
        ax.set_title(f"{activation} + {init}: first / last = {ratio:.2g}", fontsize="medium")
        ax.set_xlabel("layer" if ax in axes[-1] else "")
        ax.set_ylabel("")
        if ax is not axes[0, 0]:
            ax.get_legend().remove()
    fig.suptitle("Per-layer gradient norm and mean |delta| over one epoch (log scale)")
    fig.savefig(path, dpi=100)


def main(argv=None):
    """Run every configuration; print and return {(activation, init): first/last ratio}."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=1500, help="spiral points (default 1500)")
    parser.add_argument("--depth", type=int, default=10, help="weight layers (default 10)")
    parser.add_argument("--width", type=int, default=32, help="hidden neurons (default 32)")
    parser.add_argument("--learning-rate", type=float, default=0.01)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", metavar="PATH", help="write a PNG of the gradient flow")
    args = parser.parse_args(argv)
    if args.depth < 2 or args.width < 1 or args.samples < 2:
        parser.error("need --depth >= 2, --width >= 1 and --samples >= 2")
    if args.plot:
        try:
            importlib.import_module("nbbp.plot")  # fail before training, not after
        except ImportError as exc:
            parser.error(str(exc))

    X, y = spirals(n_samples=args.samples, n_classes=N_CLASSES, seed=args.seed)
    results = {}
    print(f"{args.depth} layers, hidden width {args.width}, one epoch on {args.samples} spiral "
          "points; ||dE/dW(l)|| per layer, first to last:")
    for activation, init in CONFIGS:
        history, ratio = measure(activation, init, X, y, args.depth, args.width, args.seed,
                                 args.learning_rate, args.batch_size)
        results[activation, init] = (history, ratio)
        norms = " ".join(f"{g:.1e}" for g in history.grad_norm[0])
        print(f"  {activation:>7} + {init:<6}  first/last {ratio:9.2e}   [{norms}]")
    if args.plot:
        plot(results, args.plot)
        print(f"wrote {args.plot}")
    return {key: ratio for key, (_, ratio) in results.items()}


if __name__ == "__main__":
    main()
