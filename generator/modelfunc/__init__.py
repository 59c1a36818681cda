"""modelfunc: turn an Azure ML-style model repo into a tested Azure Functions app."""

__version__ = "0.1.0"
