"""Errors a user can cause and fix (bad paths, wrong layouts, geometry mismatches): the CLI prints the
message without a traceback and exits with code 2. Messages name the file or case and the fix."""


class UserError(Exception):
    """An error the user can fix by changing their input or arguments."""
