"""The lab part."""
