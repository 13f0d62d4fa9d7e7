"""An out-of-tree driver (placeholder; filled by the driver-kit work)."""
