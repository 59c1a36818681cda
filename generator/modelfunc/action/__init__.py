"""The action wing: everything that knows GitHub Actions, and nothing the CLI or the core needs to run.

* :mod:`.io` — inputs, outputs, the step summary file, masks, log groups, annotations: the runner's protocol;
* :mod:`.summaries` — the Markdown a step adds to the job's summary, one renderer per domain object;
* :mod:`.signin` — the workflow's OIDC ID token as the client assertion of the Azure credential;
* :mod:`.handoff` — what one step hands to the next (the deployment, the golden table) as a JSON file;
* :mod:`.steps` — one function per step of ``action.yml`` (up, package, deploy, blob-test, swap).

``scripts/*.py`` are the steps' entry points: each calls one function of :mod:`.steps`. The core takes what
the wing reads (a credential, a progress callback, named values) and never reads ``GITHUB_*`` or
``ACTIONS_*`` variables itself.
"""
