"""Deploying to Azure: credentials, idempotent provisioning, the staging slot and swap, destroy.

The action's scripts and the CLI call :func:`deploy_to_slot`, :func:`test_slot`, :func:`swap`,
:func:`deploy`, :func:`plan` and :func:`destroy`; see each docstring for what to pass.
"""

from .clients import PipelineSettings
from .credentials import get_credential
from .deploy import deploy, deploy_to_slot, plan, swap, test_slot
from .destroy import destroy
from .options import DeployOptions
from .results import DeployResult, ServiceState, SlotDeployment, SlotUnhealthy

__all__ = ["DeployOptions", "DeployResult", "PipelineSettings", "ServiceState", "SlotDeployment", "SlotUnhealthy",
           "deploy", "deploy_to_slot", "destroy", "get_credential", "plan", "swap", "test_slot"]
