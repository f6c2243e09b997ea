"""The measure part."""
