"""Tests of spectra_core.engine, one module per engine module."""
