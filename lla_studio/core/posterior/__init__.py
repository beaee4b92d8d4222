"""Posterior lab: 2-D models, Laplace, grid posteriors, Laplace mixtures, VI, divergences."""
