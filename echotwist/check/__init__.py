"""
echolab-check: grade a server against the echolab wire contract from the
outside, check by check, each tied to its lab task and contract section
(docs/check.md).
"""
