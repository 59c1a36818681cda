"""Azure ML v1 projects as they are: ``inferenceconfig.json``, a conda file, model files beside score.py.

The Azure ML v1 docs lay a deployment out as an entry script (``score.py``), a conda file (``myenv.yml``, often
pinning ``python=3.6.2`` and listing ``azureml-defaults``), the model file downloaded beside them and an
``inferenceconfig.json`` naming the first two, which ``az ml model deploy --ic`` (and ``InferenceConfig``) read.
The retired ``azureml.contrib.functions.package(ws, [model], inference_config, functions_enabled=True,
trigger=..., input_path=..., output_path=..., auth_level=..., input_queue_name=..., output_queue_name=...)``
took the trigger on top. This package reads that layout, one module a job:

* :mod:`.inferenceconfig` (:func:`read_inference_config`): inferenceconfig.json, its keys as Azure ML writes them.
* :mod:`.survey`: what the repo holds beside it (the conda file's python pin, the model files); :func:`survey` for
  ``modelfunc init``, and :func:`config_from_inference`, a modelfunc.yaml's worth of settings for a repo without
  modelfunc.yaml (``config.load_project`` reads it then, and says so).
* :mod:`.writeconfig` (:func:`write_init`): ``modelfunc init``, which writes modelfunc.yaml from what is there and
  the old ``package()`` arguments; nothing is half-written (each file appears whole, modelfunc.yaml last, and an
  existing one is replaced only with ``--force``).
* :mod:`.record` (:func:`score_sample`, :func:`write_expected`): ``modelfunc sample record``, run() on the sample
  through the app's own self-test (up.direct_answer), then samples.expected written.

Callers import this package (``from . import amlv1``; ``amlv1.survey(...)``), never the modules inside it.
"""

from __future__ import annotations

from .inferenceconfig import (
    INFERENCE_CONFIG_NAMES,
    KNOWN,
    MAX_INFERENCE_CONFIG_BYTES,
    NOT_USED,
    InferenceConfig,
    find_inference_config,
    read_inference_config,
)
from .record import expected_bytes, score_sample, shown_answer, write_expected
from .survey import ENVIRONMENT_OUT, PythonPin, Survey, asked_model_names, config_from_inference, python_pin, survey
from .writeconfig import (
    OPTION_OF,
    TRIGGER_ALIASES,
    TRIGGER_FIELDS,
    InitAnswers,
    InitResult,
    config_text,
    normal_trigger,
    python_choice,
    write_atomically,
    write_init,
)

__all__ = [
    "ENVIRONMENT_OUT", "INFERENCE_CONFIG_NAMES", "KNOWN", "MAX_INFERENCE_CONFIG_BYTES", "NOT_USED", "OPTION_OF",
    "TRIGGER_ALIASES", "TRIGGER_FIELDS", "InferenceConfig", "InitAnswers", "InitResult", "PythonPin", "Survey",
    "asked_model_names", "config_from_inference", "config_text", "expected_bytes", "find_inference_config",
    "normal_trigger", "python_choice", "python_pin", "read_inference_config", "score_sample", "shown_answer",
    "survey", "write_atomically", "write_expected", "write_init",
]
