"""The cookiecutter template and `modelfunc new`: what they bake (support/template.py: the matrix of choices read from
template/cookiecutter.json, and cookiecutter's API kept to the test's tmp dir)."""
