"""``python -m fluidedge`` is the ``fluidedge`` command."""

from fluidedge.cli import main

main()
