# SPDX-License-Identifier: AGPL-3.0-or-later
"""Errors that services raise for the user to read."""


class JobError(Exception):
    """A request about a job that cannot be done; the message is for the user."""
