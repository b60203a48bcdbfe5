"""Trains the judge classifier (pipeline/judge.py) on Fashion-MNIST and ships it as pipeline/weights/judge.safetensors.

    python scripts/train_judge.py            # defaults: 8 epochs, 1 thread, random 1-px shifts (~8 min)

Prints the test accuracy (overall and per class) and writes it, with the config and training time, to
pipeline/weights/judge.json. Data come from `pipeline.data.load_dataset` (the Debian package's IDX files,
$FASHION_MNIST_DIR, or the Hub).
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.data import load_dataset  # noqa: E402
from pipeline.evaluation.judge import DEFAULT_JUDGE_CONFIG, JUDGE_WEIGHTS, FashionJudge  # noqa: E402


def augment(x: torch.Tensor, generator: torch.Generator, max_shift: int = 1) -> torch.Tensor:
    """Random shifts of up to `max_shift` pixels in x and y (zero padding), per image.

    No flips: every shoe in Fashion-MNIST points left, so flipped shoes would be off-distribution.
    """
    b, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4)
    dy = torch.randint(0, 2 * max_shift + 1, (b,), generator=generator)
    dx = torch.randint(0, 2 * max_shift + 1, (b,), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, :, None]
    cols = (dx[:, None] + torch.arange(w))[:, None, :]
    out = padded[torch.arange(b)[:, None, None], 0, rows, cols].unsqueeze(1)
    return out


@torch.no_grad()
def per_class_accuracy(model: FashionJudge, images: torch.Tensor, labels: torch.Tensor, num_classes: int):
    preds, _ = model.predict(images)
    labels = labels.numpy()
    correct = preds == labels
    return float(correct.mean()), [float(correct[labels == c].mean()) for c in range(num_classes)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--channels", type=int, nargs=3, default=DEFAULT_JUDGE_CONFIG["channels"])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate of the one-cycle schedule")
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--max-shift", type=int, default=1, help="random shifts of up to this many pixels")
    parser.add_argument("--dropout", type=float, default=DEFAULT_JUDGE_CONFIG["dropout"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="use only this many training images (smoke tests)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default=str(JUDGE_WEIGHTS))
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    train, test = load_dataset(args.data_dir, split="train"), load_dataset(args.data_dir, split="test")
    x_train = train.images.unsqueeze(1).float().div(255)
    y_train = train.labels
    if args.limit:
        x_train, y_train = x_train[:args.limit], y_train[:args.limit]
    x_test = test.images.unsqueeze(1).float().div(255)

    model = FashionJudge(**{**DEFAULT_JUDGE_CONFIG, "channels": args.channels, "dropout": args.dropout})
    num_params = sum(p.numel() for p in model.parameters())
    steps_per_epoch = math.ceil(len(x_train) / args.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, epochs=args.epochs,
                                                   steps_per_epoch=steps_per_epoch, pct_start=0.2)
    print(f"judge: {num_params:,} parameters; {len(x_train):,} training images from {train.source}; "
          f"{args.epochs} epochs x {steps_per_epoch} steps; {args.threads} thread(s)", flush=True)

    start = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=gen)
        total, seen = 0.0, 0
        for i in range(steps_per_epoch):
            idx = order[i * args.batch_size:(i + 1) * args.batch_size]
            x, y = augment(x_train[idx], gen, args.max_shift), y_train[idx]
            loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(idx)
            seen += len(idx)
        acc, _ = per_class_accuracy(model, x_test, test.labels, model.config["num_classes"])
        print(f"epoch {epoch + 1}/{args.epochs}: loss {total / seen:.4f}, test accuracy {acc:.4f}, "
              f"{time.perf_counter() - start:.0f} s", flush=True)
    train_time = time.perf_counter() - start

    acc, per_class = per_class_accuracy(model, x_test, test.labels, model.config["num_classes"])
    names = train.class_names
    print(f"test accuracy {acc:.4f} ({len(x_test):,} images); training took {train_time:.0f} s")
    for name, a in zip(names, per_class):
        print(f"  {name:12s} {a:.4f}")
    info = {
        "test_accuracy": round(acc, 4),
        "test_images": len(x_test),
        "per_class_test_accuracy": {name: round(a, 4) for name, a in zip(names, per_class)},
        "num_parameters": num_params,
        "training": {
            "command": "python scripts/train_judge.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "weight_decay": args.weight_decay,
            "augmentation": f"random shifts up to {args.max_shift} px", "label_smoothing": 0.1,
            "train_images": len(x_train), "data_source": train.source, "seed": args.seed,
            "wall_time_s": round(train_time, 1), "threads": args.threads,
            "hardware": f"{platform.processor() or platform.machine()} CPU, torch {torch.__version__}",
        },
    }
    model.save(args.out, info)
    print(f"wrote {args.out} and {Path(args.out).with_suffix('.json')}")
    return acc


if __name__ == "__main__":
    main()
