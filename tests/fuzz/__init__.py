"""Fuzzing every public verb and the command line (see :mod:`tests.fuzz.harness`)."""
