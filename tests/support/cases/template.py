"""The bad template values template/test_template.py tries, also rows of docs/bad-inputs.md."""

from __future__ import annotations

BAD_VALUES = [
    # (values, field, fragments of the rule and of the good example the message must hold)
    ({"app_name": "a" * 61}, "app_name", ["2-60 letters, digits and hyphens", "e.g. 'diabetes-scorer'"]),
    ({"app_name": "my_app"}, "app_name", ["2-60 letters, digits and hyphens", "e.g. 'diabetes-scorer'"]),
    ({"app_name": "-scorer"}, "app_name", ["not starting or ending with a hyphen", "e.g. 'diabetes-scorer'"]),
    ({"storage_prefix": "DiabetesScorer"}, "storage_prefix", ["3-24 lowercase letters and digits",
                                                             "e.g. 'diabetesscorer'"]),
    ({"storage_prefix": "d" * 25}, "storage_prefix", ["3-24 lowercase letters and digits", "e.g. 'diabetesscorer'"]),
    ({"resource_group": "rg-models."}, "resource_group", ["not ending with a period", "e.g. 'rg-diabetes-scorer'"]),
    ({"resource_group": "rg models"}, "resource_group", ["letters, digits, underscores, hyphens",
                                                         "e.g. 'rg-diabetes-scorer'"]),
    ({"location": "West Europe"}, "location", ["az account list-locations", "e.g. 'westeurope'"]),
    ({"registry": "acr"}, "registry", ["5-50 letters and digits", "e.g. 'diabetesscoreracr'"]),
    ({"blob_input_path": "input/{name}.json"}, "blob_input_path", ["must contain {blobname}",
                                                                   "e.g. 'input/{blobname}.json'"]),
    ({"blob_output_path": "{blobname}_out.json"}, "blob_output_path", ["has no container",
                                                                       "e.g. 'output/{blobname}_out.json'"]),
    ({"blob_output_path": "input/{blobname}_out.json"}, "blob_output_path", [
        "would trigger the function again", "e.g. 'output/{blobname}_out.json'"]),
    ({"blob_input_path": "In_Put/{blobname}.json"}, "blob_input_path", ["not a valid container name",
                                                                         "e.g. 'input/{blobname}.json'"]),
    ({"blob_input_path": "input/{blobname}\".json"}, "blob_input_path", ["may hold only letters, digits",
                                                                         "e.g. 'input/{blobname}.json'"]),
    ({"project_name": ""}, "project_name", ["is empty", "e.g. 'Diabetes Scorer'"]),
    ({"project_name": "!!!"}, "project_name", ["no letters or digits", "e.g. 'Diabetes Scorer'"]),
    ({"project_name": "Diabetes " * 10}, "project_name", ["is 90 characters; use at most 80",
                                                          "e.g. 'Diabetes Scorer'"]),
    ({"project_name": "Scorer {x}"}, "project_name", ["brace", "e.g. 'Diabetes Scorer'"]),
    ({"project_name": "Scorer\nrun: x"}, "project_name", ["control character", "e.g. 'Diabetes Scorer'"]),
    ({"action_ref": "modelfunc/modelfunc"}, "action_ref", ["names no version", "owner/repo@version",
                                                           "e.g. 'modelfunc/modelfunc@v1'"]),
    ({"action_ref": "modelfunc@v1"}, "action_ref", ["owner/repo[/path]@version", "e.g. 'modelfunc/modelfunc@v1'"]),
    ({"action_ref": "modelfunc/modelfunc@v1\n      run: x"}, "action_ref", ["owner/repo[/path]@version"]),
]
