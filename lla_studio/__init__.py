"""LLA Studio: hands-on Bayesian optimization and Laplace approximations."""

__version__ = "0.1.0"
