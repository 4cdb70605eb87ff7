"""Render the top of an audit report to a PNG for the README: ``python docs/screenshot.py audit.html docs/report.png``.

Needs the ``dev`` extra (playwright) and Debian's chromium (``make browser``).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright


def main(html: str = "audit.html", png: str = "docs/report.png", width: int = 1100, height: int = 1500) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("chromium is not installed (make browser installs Debian's chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--headless", "--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(Path(html).resolve().as_uri())
        page.screenshot(path=png, clip={"x": 0, "y": 0, "width": width, "height": height})
        browser.close()
    print(f"wrote {png}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
