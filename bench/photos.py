"""A folder of N photographs for the many-image runs docs/performance.md measures: random crops (320 to 640
px a side) of the bundled sample photographs, resized to 1024 to 1600 px (camera-sized), saved as JPEG
(quality 90: a few hundred KB each, real photographic content), deterministic for a seed.

    .venv/bin/python bench/photos.py OUT_DIR [--count 1000] [--seed 0]
"""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))


def make_photos(out_dir: str | Path, count: int, seed: int = 0) -> list[Path]:
    import numpy as np
    from PIL import Image

    from pipeline.paths import SAMPLE_IMAGES
    from sample_images import sample_image_source

    rng = np.random.default_rng(seed)
    sources = [Image.open(sample_image_source(name)).convert("RGB") for name in SAMPLE_IMAGES.values()]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for i in range(count):
        src = sources[i % len(sources)]
        w, h = src.size
        side = int(rng.integers(min(320, w, h), min(640, w, h) + 1))
        x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        crop = src.crop((x, y, x + side, y + side))
        scale = int(rng.integers(1024, 1601))  # camera-sized: a few hundred KB as JPEG
        crop = crop.resize((scale, scale), Image.BICUBIC)
        written.append(out / f"photo_{i:05d}.jpg")
        crop.save(written[-1], "JPEG", quality=90)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    files = make_photos(args.out, args.count, args.seed)
    print(f"{len(files)} photographs in {args.out} ({sum(f.stat().st_size for f in files) / 1e6:.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
