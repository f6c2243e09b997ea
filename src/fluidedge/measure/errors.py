"""Errors of the measurement toolkit::

MeasureError (FluidedgeError)
├── MeasureInputError (InputError)      bad parameters or data (empty series, bad rate...)
├── CaptureError (InputError)           a capture file cannot be read or holds no API traffic
├── BenchmarkFailure (SystemFailure)    the system under test failed during a run
└── NoRunsError (NotFoundError)         no run directory to report on
"""

from __future__ import annotations

from fluidedge.errors import FluidedgeError, InputError, NotFoundError, SystemFailure


class MeasureError(FluidedgeError):
    """Base of the measurement toolkit's errors."""


class MeasureInputError(MeasureError, InputError):
    """Bad parameters or data given to a measurement function."""


class CaptureError(MeasureError, InputError):
    """A packet capture cannot be read or decoded."""


class BenchmarkFailure(MeasureError, SystemFailure):
    """The system under test failed while being measured."""


class NoRunsError(MeasureError, NotFoundError):
    """There is no run directory to report on."""
