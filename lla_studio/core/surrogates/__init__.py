"""Surrogate models (exact GP, linearized Laplace); each is a botorch Model."""
