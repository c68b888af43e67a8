"""Fitting and evaluating models offline; the synthetic world lives in `synthetic`."""
