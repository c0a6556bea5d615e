"""The pure core: parse, verify, decide, route.

Nothing in this package opens a socket or a file or reads the clock: callers
hand it bytes, an immutable trust view and the evaluation time.
"""
