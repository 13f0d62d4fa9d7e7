"""pytest plugin entry point of acomp (fixtures for driver authors)."""
