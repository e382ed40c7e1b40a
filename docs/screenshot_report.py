"""Write the report of a saved fit and take a full-page screenshot of it in headless Chromium.

    python docs/screenshot_report.py models/reference_joint.nc --html /tmp/report.html --png /tmp/report.png

Needs the `dev` extra (Playwright) and a Chromium binary (Debian: `apt-get install chromium`);
Playwright drives that system browser, it downloads none of its own.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("no Chromium on PATH: install it (Debian: apt-get install -y chromium)")


def screenshot(html: Path, png: Path, width: int = 1280) -> Path:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=find_chromium(), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.goto(html.resolve().as_uri())
        page.screenshot(path=str(png), full_page=True)
        browser.close()
    return png


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("fit", help="a result written by `bayesmoe fit --out`")
    ap.add_argument("--html", default="report.html", help="where to write the report")
    ap.add_argument("--png", default="report.png", help="where to write the screenshot")
    ap.add_argument("--width", type=int, default=1280, help="viewport width in CSS pixels")
    ap.add_argument("--flops", type=float, nargs="+", default=None, help="budgets for the recommendations")
    args = ap.parse_args()
    import bayesmoe

    html = bayesmoe.load(args.fit).report(args.html, budgets=args.flops)
    print(f"report: {html}\nscreenshot: {screenshot(html, Path(args.png), args.width)}")


if __name__ == "__main__":
    main()
