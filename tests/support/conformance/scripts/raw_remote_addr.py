"""@rawhttp: logs who called (request.remote_addr, access_route), as audit-minded scripts do."""
from azureml.contrib.services.aml_request import AMLRequest, rawhttp


def init():
    pass


@rawhttp
def run(request: AMLRequest):
    return {"remote_addr": request.remote_addr, "loopback": request.remote_addr in ("127.0.0.1", "::1")}
