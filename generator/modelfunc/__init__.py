"""modelfunc: turn an Azure ML-style model repo into a tested Azure Functions app."""

__version__ = "1.0.0"

# The environment variable that carries a storage connection string to every command (never a command line).
CONNECTION_ENV = "MODELFUNC_CONNECTION_STRING"
