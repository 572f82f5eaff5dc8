"""``make docs-screenshot``: serve the example, fill the first api's form in headless Chromium, save a PNG.

python tests/docs_screenshot.py docs/docs-page.png
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser import chromium
from tests.conftest import start


def main(out: Path) -> int:
    """Write the screenshot to ``out``."""
    with tempfile.TemporaryDirectory() as tmp:
        server = start("asgiserve", "summarizer:Summarization", Path(tmp), "--no-access-log")
        driver = chromium(1200, 900)
        try:
            driver.get(server.url + "/")
            wait = WebDriverWait(driver, 15)
            wait.until(lambda d: d.execute_script("return document.body.dataset.ready") == "true")
            driver.find_element(By.CSS_SELECTOR, "#api-summarize button[type=submit]").click()
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#result-summarize pre.text"))
            driver.execute_script("document.querySelector('#api-summarize details').open = true")
            time.sleep(0.2)  # let the layout settle after opening the snippets
            height = driver.execute_script(
                "return document.querySelector('#api-summarize').getBoundingClientRect().bottom"
            )
            driver.set_window_size(1200, int(height) + 40)
            out.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(out))
        finally:
            driver.quit()
            server.stop()
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/docs-page.png")))
