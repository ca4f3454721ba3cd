"""Slot validation, sandboxed rendering, the compile-once pipeline, previews, brand-lock proof."""
