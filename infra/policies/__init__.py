# Casebook's custom checkov policies (loaded with --external-checks-dir infra/policies).
