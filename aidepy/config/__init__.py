"""The rules: aide.conf's language parsed (syntax), evaluated (evaluate) into the model, and aidepy's
own options."""
