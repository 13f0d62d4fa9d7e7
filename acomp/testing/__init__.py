"""Conformance helpers for driver authors (filled in by the driver-kit work)."""
