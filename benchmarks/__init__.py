"""asgiserve's benchmark harness: peers measured side by side in one run, reported as ratios."""
