"""A quick proxy of the benchmark's difficulty (the full check is the calibration run).

    python -m bench.synth_proxy_check [--train 3000] [--test 750] [--pixels 64] [--epochs 6]

Trains a plain torchvision ResNet-18 from scratch on a freshly generated benchmark (clean labels)
at low resolution for a few epochs, then prints test accuracy, the most confused class pairs and
the accuracy of subsets that should be harder: subtle intensity, blends, occluded and degraded
images. About 1.5 CPU-minutes per epoch at the defaults on a 2-core machine; weaker than the
calibration run (fewer pixels, images and epochs), so its accuracy is a lower bound of what the
calibration reaches.
"""
import argparse
import csv
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image

from scn.classes import CLASS_NAMES
from scn.synth import generate_dataset


def load(root: Path, pixels: int):
    """Images (N, 3, H, W) float tensor, true labels and ground-truth rows of each split."""
    with open(root / "groundtruth.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    splits = {}
    for split in ("train", "test"):
        chosen = [r for r in rows if r["split"] == split]
        images = np.stack([
            np.asarray(Image.open(root / "Image/aligned" / r["image"].replace(".jpg", "_aligned.jpg"))
                       .resize((pixels, pixels), Image.BILINEAR)) for r in chosen])
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255).sub(0.5).div(0.25)
        y = torch.tensor([int(r["true_label"]) - 1 for r in chosen])
        splits[split] = (x, y, chosen)
    return splits


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=3000)
    parser.add_argument("--test", type=int, default=750)
    parser.add_argument("--pixels", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        root = generate_dataset(Path(scratch) / "synth", train=args.train, test=args.test, seed=args.seed,
                                progress=False)
        data = load(root, args.pixels)
    (x, y, _), (xt, yt, rows) = data["train"], data["test"]
    model = torchvision.models.resnet18(num_classes=len(CLASS_NAMES))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    steps = args.epochs * ((len(x) + 63) // 64)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=steps)
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(x))
        for i in range(0, len(x), 64):
            batch = order[i:i + 64]
            images = x[batch]
            flip = torch.rand(len(batch)) < 0.5
            images[flip] = images[flip].flip(3)
            loss = torch.nn.functional.cross_entropy(model(images), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        print(f"epoch {epoch + 1}: loss {loss.item():.3f} ({time.perf_counter() - start:.0f} s)", flush=True)
    model.eval()
    with torch.no_grad():
        predicted = torch.cat([model(xt[i:i + 256]).argmax(1) for i in range(0, len(xt), 256)]).numpy()
    truth = yt.numpy()
    correct = predicted == truth
    print(f"test accuracy {correct.mean():.3f} on {len(truth)} images, {time.perf_counter() - start:.0f} s")
    confusion = np.zeros((len(CLASS_NAMES),) * 2, int)
    np.add.at(confusion, (truth, predicted), 1)
    pairs = confusion + confusion.T
    np.fill_diagonal(pairs, 0)
    print("most confused pairs (both directions):")
    for flat in np.argsort(-np.triu(pairs).ravel())[:5]:
        a, b = divmod(int(flat), len(CLASS_NAMES))
        print(f"  {CLASS_NAMES[a]} / {CLASS_NAMES[b]}: {pairs[a, b]}")
    print("per-class recall:", {n: round(float(correct[truth == i].mean()), 2) for i, n in enumerate(CLASS_NAMES)})
    subsets = {
        "subtle (intensity < 0.4, not neutral)": [
            r["true_class"] != "neutral" and float(r["intensity"]) < 0.4 for r in rows],
        "strong (intensity >= 0.7)": [float(r["intensity"]) >= 0.7 for r in rows],
        "blend": [r["blend_partner"] != "" for r in rows],
        "occluded": [r["occlusion"] != "none" for r in rows],
        "degraded (blur, low-res, noise or JPEG < 50)": [
            float(r["blur_sigma"]) > 0 or float(r["resolution_scale"]) < 1 or float(r["noise_sigma"]) > 0
            or int(r["jpeg_quality"]) < 50 for r in rows],
    }
    for name, mask in subsets.items():
        mask = np.array(mask)
        print(f"  {name}: accuracy {correct[mask].mean():.3f} on {mask.sum()} images; "
              f"others {correct[~mask].mean():.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
