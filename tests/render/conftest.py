"""Rendering a model repo into an app (`modelfunc package`): the files, the app's environment and lock, bad inputs and
their catalogue (docs/bad-inputs.md), Azure ML v1 projects. The shared fixtures (``example``, ``serve``, ``azurite``)
come from support/plugin.py; the case lists docs/bad-inputs.md is generated from live in support/cases/."""
