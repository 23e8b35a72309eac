"""Python classes generated from yang/ by pyangbind, for programmatic clients.

Nothing is generated yet: the generator script, the checked-in classes and the
check that they match a fresh generation come with the client tools (issue 13).
"""
