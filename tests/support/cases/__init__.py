"""The case lists of test modules that docs/bad-inputs.md is generated from: one module per test module, imported
by that test and by tests/render/test_bad_input_catalogue.py (no test module imports another)."""
