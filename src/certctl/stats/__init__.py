"""Dashboard statistics and metrics (core.md §5.9, §12): SQL aggregates over every row, never a page."""
