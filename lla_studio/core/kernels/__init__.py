"""Kernel graphs: serializable specs, validation, text form, compilation to gpytorch."""
