"""@rawhttp that also reads flask's global request and answers with jsonify."""
from azureml.contrib.services.aml_request import rawhttp
from flask import jsonify, request


def init():
    pass


@rawhttp
def run(req):
    return jsonify(same=req.get_data() == request.get_data(), method=request.method, args=request.args.to_dict())
