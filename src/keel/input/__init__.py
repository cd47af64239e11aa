"""Input layer: clean and defend what comes in before anything else sees it."""
