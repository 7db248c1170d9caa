"""Thesis Figs 3.1-3.6 (in part): the predictive-coding "autoencoder", a generative hierarchy
784 -> 100 -> 20 whose 20-d top latent predicts the pixels.

    python -m demos.generative --dataset mnist --epochs 5     # writes results/generative/mnist
    python -m demos.generative --dataset digits --backend circuit --out results/generative/digits-circuit

Trains online in minibatches (100 inference steps at 0.1, then one batch-mean Hebbian step),
then encodes test digits (200 steps) and writes ``figures.png`` (training and test digits
and their reconstructions through the bottleneck, and the one-layer prediction of spec 2.5;
dreams around exemplar latents; PCA of the latents coloured by label; an interpolation
between two test digits) and ``numbers.json``:
reconstruction MSE on train and test against the mean-image baseline, 5-NN accuracy on the
latents, and the share of dreams that a logistic-regression classifier trained on the pixels
assigns to their exemplar's class; and the criteria spec 8 proposes (10-NN accuracy,
silhouette by label of the 2-d PCA, the pixel classifier's accuracy on the reconstructions,
PSNR).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from algorithms.data import DataError, DatasetNotFoundError, load_dataset
from algorithms.generative import GenerativePC, GenerativeSpec

from ._runs import add_device_argument, atomic_write_text, device_from


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m demos.generative",
                                description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="mnist",
                   choices=["digits", "mnist", "fashion-mnist", "cifar10"],
                   help="cifar10 needs the python batches in <data dir>/cifar10 (not shipped)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--hidden", type=int, default=100)
    p.add_argument("--latent", type=int, default=20)
    p.add_argument("--learning-rate", type=float, default=1.0,
                   help="on the batch-mean update (the thesis's 0.01 barely moves in 5 epochs)")
    p.add_argument("--prior-precision", type=float, default=0.1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--backend", choices=["torch", "circuit"], default="torch",
                   help="circuit: train the Brian2 rate circuit (cython) next to a float64 "
                        "torch twin; the evaluation uses the circuit's weights")
    p.add_argument("--out", type=Path, default=None)
    add_device_argument(p)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        device = device_from(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        data = load_dataset(args.dataset, args.data_dir)
    except (DatasetNotFoundError, DataError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    out = args.out or Path("runs/generative") / args.dataset
    out.mkdir(parents=True, exist_ok=True)
    spec = GenerativeSpec(sizes=(data.n_features, args.hidden, args.latent),
                          learning_rate=args.learning_rate,
                          prior_precision=args.prior_precision)
    x, xt = data.train_x.float(), data.test_x.float()
    g = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    extra: dict[str, object] = {"backend": args.backend}
    if args.backend == "torch":
        extra["device"] = str(device)
        model = GenerativePC(spec, device=device)
        x_dev = x.to(device)
        for epoch in range(1, args.epochs + 1):
            perm = torch.randperm(len(x), generator=g).to(device)
            F = [model.train_batch(x_dev[perm[i:i + 64]]) for i in range(0, len(x), 64)]
            print(f"epoch {epoch}: mean energy {np.mean(F):.3f} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    else:  # the Brian2 circuit, next to a float64 torch twin on the same minibatches
        from dataclasses import replace

        from circuits.drive import Target
        from circuits.pc import build_pc_circuit

        spec = replace(spec, dtype="float64")
        model = GenerativePC(spec)
        circuit = build_pc_circuit(spec, model.theta, target=Target.CYTHON, name="gen_demo")
        circuit_s = twin_s = 0.0
        gap = 0.0
        for epoch in range(1, args.epochs + 1):
            perm = torch.randperm(len(x), generator=g)
            xs = x[perm].double()
            F = []
            for i in range(0, len(xs), 1024):  # chunks of whole minibatches
                t1 = time.perf_counter()
                r = circuit.train(xs[i:i + 1024], batch_size=64)
                circuit_s += time.perf_counter() - t1
                F += list(sum(0.5 * (r[f"eps{l}"] ** 2).sum(1) for l in range(spec.L))
                          + 0.5 * spec.prior_precision * (r[f"eps{spec.L}"] ** 2).sum(1))
                t1 = time.perf_counter()
                for j in range(i, min(i + 1024, len(xs)), 64):
                    model.train_batch(xs[j:j + 64])
                twin_s += time.perf_counter() - t1
            gap = max(float((a - b).abs().max()) for a, b in zip(circuit.get_params(),
                                                                   model.theta))
            print(f"epoch {epoch}: mean energy {np.mean(F):.3f}, max |circuit - twin| weight "
                  f"{gap:.1e} ({time.perf_counter() - t0:.0f} s)", flush=True)
        model.theta = [t.to(spec.torch_dtype) for t in circuit.get_params()]
        extra.update({"max_abs_weight_difference_circuit_vs_torch_twin": gap,
                      "circuit_seconds_per_epoch": circuit_s / args.epochs,
                      "torch_twin_seconds_per_epoch": twin_s / args.epochs})
    model = model.cpu()  # the evaluation below is sklearn and matplotlib: on the CPU
    x, xt = x.to(spec.torch_dtype), xt.to(spec.torch_dtype)
    z_train = model.encode(x[:5000], steps=200)
    z_test = model.encode(xt, steps=200)
    rec_train = model.decode(z_train)
    rec_test = model.decode(z_test)
    mean_img = x.mean(0)

    def mse(a: torch.Tensor, b: torch.Tensor) -> float:
        return float(((a - b) ** 2).mean())

    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier

    from sklearn.metrics import silhouette_score

    knn = KNeighborsClassifier(5).fit(z_train.numpy(), data.train_y[:5000].numpy())
    knn_acc = float(knn.score(z_test.numpy(), data.test_y.numpy()))
    knn10 = KNeighborsClassifier(10).fit(z_train.numpy(), data.train_y[:5000].numpy())
    knn10_acc = float(knn10.score(z_test.numpy(), data.test_y.numpy()))
    clf = LogisticRegression(max_iter=300).fit(x[:10000].numpy(), data.train_y[:10000].numpy())
    std = z_test.std(0)
    rng = torch.Generator().manual_seed(1)
    exemplars = [int((data.test_y == c).nonzero()[0]) for c in range(data.n_classes)]
    dreams = torch.stack([model.decode(z_test[e] + 0.5 * std * torch.randn(10, len(std),
                                                                            generator=rng))
                          for e in exemplars])  # classes x 10 x pixels
    dream_share = float(np.mean([(clf.predict(dreams[c].numpy()) == c).mean()
                                 for c in range(data.n_classes)]))
    pcs = PCA(2).fit_transform(z_test.numpy())
    test_mse = mse(rec_test, xt)
    numbers = {"command": "python -m demos.generative " + shlex.join(
                   argv if argv is not None else sys.argv[1:]),
               "dataset": data.describe(), "sizes": spec.sizes,
               "reconstruction_mse_train": mse(rec_train, x[:5000]),
               "reconstruction_mse_test": test_mse,
               "reconstruction_psnr_db_test": float(10 * np.log10(1.0 / test_mse)),
               "mean_image_mse_test": mse(mean_img, xt),
               "knn5_accuracy_on_latents": knn_acc,
               "knn10_accuracy_on_latents": knn10_acc,
               "silhouette_by_label_of_2d_pca": float(silhouette_score(pcs,
                                                                       data.test_y.numpy())),
               "pixel_classifier_accuracy_on_test_reconstructions": float(
                   clf.score(rec_test.numpy(), data.test_y.numpy())),
               "dreams_classified_as_exemplar_class": dream_share,
               "pixel_classifier_test_accuracy": float(clf.score(xt.numpy(), data.test_y.numpy())),
               **extra}
    atomic_write_text(out / "numbers.json", json.dumps(numbers, indent=2) + "\n")
    for k, v in numbers.items():
        if isinstance(v, float):
            print(f"  {k}: {v:.4f}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h, w = data.image_shape
    ch = data.channels

    def image(v: torch.Tensor) -> np.ndarray:
        """One flat image (channel-major, as the loaders store it) for ``imshow``."""
        if ch == 1:
            return v.reshape(h, w).numpy()
        return v.reshape(ch, h, w).permute(1, 2, 0).clamp(0, 1).numpy()

    def strip(vs: torch.Tensor) -> np.ndarray:
        return np.concatenate([image(v) for v in vs], axis=1)

    with torch.no_grad():  # spec 2.5's secondary reconstruction: the one-layer prediction
        mu1 = model.infer(xt[:12], steps=200)[1]
        one_layer = spec.activations[0].f(mu1 @ model.theta[0].T)
    fig = plt.figure(figsize=(15, 12))
    gs = fig.add_gridspec(7, 12, height_ratios=[1, 1, 1, 1, 1, 1, 2.6])
    rows = (("training image", x), ("dec(enc(.)), training", rec_train), ("test image", xt),
            ("dec(enc(.)), test: through the latent", rec_test),
            ("f(theta_1 mu_1*), test: the one-layer prediction", one_layer))
    for r, (label, imgs) in enumerate(rows):
        for j in range(12):
            a = fig.add_subplot(gs[r, j])
            a.imshow(image(imgs[j]), cmap="gray", vmin=0, vmax=1)
            a.axis("off")
            if j == 0:
                a.set_title(label, fontsize=8, loc="left")
    for c in range(min(10, data.n_classes)):
        a = fig.add_subplot(gs[5, c])
        a.imshow(strip(dreams[c, :4]), cmap="gray", vmin=0, vmax=1)
        a.axis("off")
        if c == 0:
            a.set_title("dreams around exemplar latents", fontsize=8, loc="left")
    a = fig.add_subplot(gs[6, :5])
    sc = a.scatter(pcs[:, 0], pcs[:, 1], c=data.test_y.numpy(), cmap="tab10", s=2)
    fig.colorbar(sc, ax=a)
    a.set_title(f"PCA of the {args.latent}-d test latents", fontsize=8)
    # spec 2.5: from the first image toward the second, alpha = 0, 0.1, ..., 1 (CIFAR-10:
    # horse -> cat, as the thesis; otherwise class 0 -> class 1)
    src, dst = (exemplars[7], exemplars[3]) if data.name == "cifar10" else exemplars[:2]
    lam = torch.linspace(0, 1, 11)[:, None]
    interp = model.decode(z_test[src] + lam * (z_test[dst] - z_test[src]))
    a = fig.add_subplot(gs[6, 5:])
    a.imshow(strip(interp), cmap="gray", vmin=0, vmax=1)
    a.axis("off")
    a.set_title("latent interpolation, alpha = 0, 0.1, ..., 1", fontsize=8, loc="left")
    fig.suptitle(f"generative PC on {data.name}: {'-'.join(map(str, spec.sizes))}", fontsize=10)
    fig.savefig(out / "figures.png", dpi=110)
    plt.close(fig)
    print(f"wrote {out}/numbers.json, figures.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
