"""Classification Accuracy Score (CAS, Ravuri & Vinyals 2019): a fixed small CNN trained on generated images only and
tested on real ones, beside the same CNN trained the same way on real images.

The classifier, fixed for every measurement (deliberately NOT the project's judge in `judge.py`): a standard two-block
CNN of 421,642 parameters (`ARCHITECTURE`). Recipe: pixels scaled to [0, 1], no augmentation; Adam (betas 0.9/0.999,
no weight decay), cosine decay to 0, a FIXED number of updates whatever the training set's size, cross-entropy, no
early stopping and no model selection: the test set is used once, at the end. Batches are drawn from a fresh
permutation per pass, seeded by the run's seed (as are the initial weights and dropout), so every number is
reproducible on the CPU.

    score(images, labels, test_images, test_labels, seeds=[0, 1, 2], updates=500)   # {"mean", "std", "per_seed"}

Used by benchmarks/synthetic_data.py (CAS and augmentation) and benchmarks/clip_loss.py (CAS of each fine-tune).
"""

from __future__ import annotations

import math
import statistics
import time

ARCHITECTURE = ("conv3x3(1->32,pad 1)-ReLU-maxpool2 / conv3x3(32->64,pad 1)-ReLU-maxpool2 / flatten 3136 / "
                "linear(3136->128)-ReLU / dropout 0.5 / linear(128->10)")


def build_classifier():
    import torch.nn as nn

    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10),
    )


def batch_indices(n: int, batch_size: int, updates: int, seed: int):
    """`updates` index batches over range(n): consecutive slices of fresh permutations, seeded by `seed`."""
    import torch

    generator = torch.Generator().manual_seed(seed * 7919 + 17)
    stream, position = torch.randperm(n, generator=generator), 0
    for _ in range(updates):
        parts, need = [], batch_size
        while need:
            if position == n:
                stream, position = torch.randperm(n, generator=generator), 0
            take = min(need, n - position)
            parts.append(stream[position:position + take])
            position, need = position + take, need - take
        yield torch.cat(parts)


def train_and_test(images, labels, test_images, test_labels, seed: int, updates: int, batch_size: int, lr: float,
                   device: str = "cpu") -> float:
    """Trains the fixed CNN on uint8 images N x 28 x 28 (tensors or arrays) for `updates` updates on `device`; returns its
    test accuracy.
    The batches are the same on every device (drawn on the CPU); weights and dropout follow the device's RNG."""
    import torch
    import torch.nn.functional as F

    images, labels, test_images, test_labels = map(torch.as_tensor, (images, labels, test_images, test_labels))
    torch.manual_seed(seed)
    net = build_classifier().to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / updates)))
    x_all, labels = images.unsqueeze(1).to(device), labels.to(device)
    test_images, test_labels = test_images.to(device), test_labels.to(device)
    # All batches drawn up front and sent once: a per-step host-to-device copy would make every step wait for the GPU.
    order = torch.cat(list(batch_indices(len(labels), batch_size, updates, seed))).to(device)
    net.train()
    for ids in order.split(batch_size):
        loss = F.cross_entropy(net(x_all[ids].float().div(255)), labels[ids])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    net.eval()
    correct = 0
    with torch.no_grad():
        for lo in range(0, len(test_labels), 1000):
            logits = net(test_images[lo:lo + 1000].unsqueeze(1).float().div(255))
            correct += (logits.argmax(1) == test_labels[lo:lo + 1000]).sum().item()
    return correct / len(test_labels)


def per_class_subset(labels, k: int, seed: int):
    """Indices of k random images of each class (seeded), in class order."""
    import torch

    generator = torch.Generator().manual_seed(seed * 104729 + k)
    chosen = []
    for c in range(int(labels.max()) + 1):
        ids = (labels == c).nonzero().flatten()
        if len(ids) < k:
            raise SystemExit(f"error: class {c} has {len(ids)} training images, fewer than {k}")
        chosen.append(ids[torch.randperm(len(ids), generator=generator)[:k]])
    return torch.cat(chosen)


def calibrate(updates: int, batch_size: int, test_size: int, device: str = "cpu") -> dict:
    """Seconds per update and per 1,000 test images of the classifier on this machine (random data)."""
    import torch

    x = torch.randint(0, 256, (512, 28, 28), dtype=torch.uint8)
    y = torch.randint(0, 10, (512,))
    train_and_test(x, y, x[:8], y[:8], seed=0, updates=3, batch_size=batch_size, lr=1e-3, device=device)  # warm-up
    start = time.perf_counter()
    train_and_test(x, y, x[:8], y[:8], seed=0, updates=12, batch_size=batch_size, lr=1e-3, device=device)
    per_update = (time.perf_counter() - start) / 12
    net = build_classifier().to(device).eval()
    start = time.perf_counter()
    with torch.no_grad():
        net(x[:500].unsqueeze(1).float().to(device)).sum().item()  # .item(): wait for the device
    per_test = (time.perf_counter() - start) / 500
    return {"seconds_per_update": per_update, "seconds_per_run": per_update * updates + per_test * test_size}


def mean_std(accuracies: list[float]) -> tuple[float, float]:
    """The mean and sample standard deviation of one measurement's accuracies (std 0 for one seed)."""
    return statistics.fmean(accuracies), statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0


def score(images, labels, test_images, test_labels, seeds: list[int], updates: int, batch_size: int = 128,
          lr: float = 1e-3, device: str = "cpu") -> dict:
    """CAS of uint8 `images` / `labels`: the CNN trained once per seed, tested on the test set; mean, std and each seed's."""
    accuracies = [train_and_test(images, labels, test_images, test_labels, seed, updates, batch_size, lr, device)
                  for seed in seeds]
    mean, std = mean_std(accuracies)
    return {"mean": mean, "std": std, "per_seed": accuracies}
