"""The runtime shim copied into every generated app (see modelfunc_runtime.py)."""
