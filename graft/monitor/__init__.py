"""Watch a served model: the log of served requests (`requests`) and drift against training data (`drift`)."""
