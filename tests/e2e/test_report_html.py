"""results/report.html of the e2e workflow (ViT-Toy-16, synthetic) in headless Chromium: it loads
without errors, shows the verdicts, the matmul ceilings beside the speed-up and its figures; its
screenshot is kept as a test artifact. And Snakemake's own `snakemake --report` over the same run,
with the report's categories."""
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from apt_packages import AptUnavailable, apt_install, which
from conftest import E2E_ARCH, REPO

pytestmark = pytest.mark.e2e

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars")
WINDOW = (1400, 2000)
PLOTS = ("accuracy_chain", "throughput", "accuracy_vs_speed", "per_image", "latency")

# Injected into a copy of the page (never the report itself): after load, record how many images
# decoded and every error (script errors and resources that failed to load) on <body>.
PROBE = """<script>
window.__errors = [];
window.addEventListener("error", e => window.__errors.push(String(e.message || (e.target && e.target.src))), true);
window.addEventListener("load", () => {
  const ok = [...document.images].filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.imagesDecoded = ok;
  document.body.dataset.errors = JSON.stringify(window.__errors);
});
</script>"""


def _install_chromium() -> str:
    """Debian's chromium (with its recommended fonts), installed with apt-get when missing; skips the test
    (with the reason) when that fails."""
    try:
        apt_install(("chromium",), ("chromium",), recommends=True, timeout=900)
    except AptUnavailable as exc:
        pytest.skip(f"headless Chromium unavailable: {exc}")
    return which("chromium")


@pytest.fixture(scope="module")
def chromium() -> str:
    return _install_chromium()


def run_chromium(chromium: str, url: str, *args: str) -> subprocess.CompletedProcess:
    """One headless Chromium run in a fresh profile."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={WINDOW[0]},{WINDOW[1]}",
               *args, url]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"{' '.join(cmd)} exited {done.returncode}:\n{done.stderr[-3000:]}"
    return done


def keep_artifact(src: Path, name: str, tmp_path_factory) -> list[Path]:
    """Copy a file to the session's artifact folder and, in CI, to $CI_ARTIFACTS; returns the copies."""
    targets = [tmp_path_factory.getbasetemp() / "artifacts" / name]
    if os.environ.get("CI_ARTIFACTS"):
        targets.append(Path(os.environ["CI_ARTIFACTS"]) / name)
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
    return targets


def test_report_html_renders_in_headless_chromium(e2e_workflow, chromium, tmp_path, tmp_path_factory, capsys):
    from PIL import Image

    report = e2e_workflow.root / "results" / "report.html"
    # the DOM after load, from an instrumented copy
    probe = tmp_path / "report-probe.html"
    probe.write_text(report.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = run_chromium(chromium, probe.as_uri(), "--virtual-time-budget=5000", "--dump-dom").stdout
    body = re.search(r"<body[^>]*>", dom).group(0)
    assert 'data-errors="[]"' in body, f"errors while loading the report: {body}"
    assert f'data-images-decoded="{len(PLOTS)}"' in body, f"figures that did not decode: {body}"
    verdict = re.search(r'<div class="verdict (\w+)" id="verdict"><div class="word">(\w+)</div>', dom)
    assert verdict and verdict.groups() == ("pass", "PASS")
    assert "SYNTHETIC" in dom and 'class="banner warn"' in dom
    assert dom.count('<span class="badge pass">PASS</span>') >= 4  # every gate and the target
    # the speed-up beside the host's two matmul rates, measured in the same benchmark job
    assert re.search(r"→ \d+\.\d\d× (\[[\d.]+, [\d.]+\] )?(within noise )?\(matmul GFLOP/s torch \d+ / ORT \d+\)", dom), \
        "speed-up without ceilings"
    for name in PLOTS:
        assert re.search(rf'<figure[^>]*id="fig-{name}"><img alt="[^"]+" src="data:image/png;base64,', dom), name

    # the report itself, as a person sees it
    shot = tmp_path / "report-screenshot.png"
    run_chromium(chromium, report.as_uri(), "--virtual-time-budget=5000", f"--screenshot={shot}")
    with Image.open(shot) as image:
        assert image.size == WINDOW
        colors = image.convert("RGB").getcolors(maxcolors=1 << 20)
        assert colors is None or len(colors) > 50, "the screenshot is blank"
        # the green PASS badge is drawn in the top band (the verdict is seen without scrolling)
        top = np.asarray(image.convert("RGB").crop((0, 0, WINDOW[0], 200))).reshape(-1, 3).astype(int)
        green = (top[:, 1] > 100) & (top[:, 0] < 60) & (top[:, 2] < 90)
        assert green.sum() > 1000, "no green verdict at the top"
    kept = keep_artifact(shot, "report-screenshot.png", tmp_path_factory)
    with capsys.disabled():
        print(f"\nreport.html screenshot (headless Chromium): {', '.join(map(str, kept))}")


def test_snakemake_report_has_the_report_with_captions_and_categories(e2e_workflow, tmp_path, tmp_path_factory):
    captions = e2e_workflow.root / "report"
    if not captions.is_dir():  # workflow copies made before report/ was part of the workflow files
        shutil.copytree(REPO / "report", captions)
    out = tmp_path / "snakemake-report.html"
    e2e_workflow.run("--report", str(out))
    text = out.read_text(encoding="utf-8", errors="replace")
    for category in ("Summary", "Accuracy", "Performance", "Artifacts"):
        assert category in text, f"category {category} missing from snakemake --report"
    for name in ("report.html", "report.md", "report.json", *(f"{p}.png" for p in PLOTS), "accuracy.csv",
                 "performance.csv", "artifacts.csv"):
        assert name in text, f"{name} missing from snakemake --report"
    assert "Precision chain" in text and "Accuracy versus speed" in text and E2E_ARCH in text  # captions, description
    keep_artifact(out, "snakemake-report.html", tmp_path_factory)

