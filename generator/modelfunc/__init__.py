"""modelfunc: turn an Azure ML-style model repo into a tested Azure Functions app."""

__version__ = "1.0.0"

# The environment variable that carries a storage connection string to every command (never a command line).
CONNECTION_ENV = "MODELFUNC_CONNECTION_STRING"
# Beside it, when that account is an Azurite modelfunc started: its access log, where the local host's blob trigger
# reads the blobs written (localhost/accesslog.py).
AZURITE_LOG_ENV = "MODELFUNC_AZURITE_LOG"
