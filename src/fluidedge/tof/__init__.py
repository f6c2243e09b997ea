"""The tof part."""
