"""Headless Chromium for the docs page tests and ``make docs-screenshot``, driven by Selenium.

Selenium talks the W3C WebDriver protocol to Debian's ``chromium-driver``, which is built from the same
source as Debian's ``chromium``, so the pair always matches; the Makefile installs both when missing.
(Playwright pins its own Chromium build and only supports that one, so pointing it at the system browser
works until the two drift apart.)
"""

from __future__ import annotations

import shutil

from selenium import webdriver


def chromium(width: int = 1280, height: int = 900) -> webdriver.Chrome:
    """A headless Chromium of ``width`` x ``height`` CSS pixels."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        raise RuntimeError("chromium and chromedriver are needed: `make test` installs them (apt-get)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        opts.add_argument(arg)
    opts.add_argument(f"--window-size={width},{height}")
    return webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=driver))
