"""Unit tests of the pure pieces (blob paths, requirements, comparison, configuration and its hardening), the secrets
guard, and the repository's own rules (the architecture's import rules, hygiene). They need no service: the shared
fixtures of support/plugin.py (``example`` above all) are all they use."""
